import { afterEach, describe, expect, it } from "vitest";
import { createTestDb, dbTargets, type TestDb } from "../../../test/support/db.ts";
import { migrate, readMigrations } from "./migrate.ts";

// Migration scripts never run through the Data API (one statement per call):
// on Aurora the migrate function runs them through pg.
describe.each(dbTargets().filter((target) => target !== "data-api"))("migrate on %s", (target) => {
  let t: TestDb;
  afterEach(() => t?.drop());

  it("applies every migration once, in order, and records them", async () => {
    t = await createTestDb(target, { migrated: false });
    const names = (await readMigrations()).map((m) => m.name);
    expect(await migrate(t.db)).toEqual(names);
    expect(await migrate(t.db)).toEqual([]);
    const recorded = await t.db.query<{ name: string }>(
      "select name from schema_migrations order by name",
    );
    expect(recorded.map((r) => r.name)).toEqual(names);
  });

  it("rolls back a failing migration whole, leaving nothing half-applied", async () => {
    t = await createTestDb(target, { migrated: false });
    const broken = [
      { name: "001_ok.sql", sql: "create table a (id int);" },
      { name: "002_bad.sql", sql: "create table b (id int); select 1/0;" },
    ];
    await expect(migrate(t.db, broken)).rejects.toThrow();
    const tables = await t.db.query<{ n: number }>(
      "select count(*)::int as n from information_schema.tables where table_name in ('a', 'b', 'schema_migrations') and table_schema = current_schema()",
    );
    expect(tables[0]!.n).toBe(0);
  });
});

// PGlite is one session in one process; concurrency only means something on a server.
describe.each(dbTargets().filter((target) => target === "postgres"))(
  "migrate on %s, concurrently",
  (target) => {
    let t: TestDb;
    afterEach(() => t?.drop());

    it("is safe from two processes at once", async () => {
      t = await createTestDb(target, { migrated: false });
      const other = t.connectAgain!();
      const [a, b] = await Promise.all([migrate(t.db), migrate(other)]);
      const names = (await readMigrations()).map((m) => m.name);
      expect([...a, ...b].sort()).toEqual(names);
    });
  },
);
