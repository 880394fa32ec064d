import { afterEach, describe, expect, it } from "vitest";
import { hashAuditRecord, valueDigest } from "../../../core/audit.ts";
import { createTestDb, dbTargets, type TestDb } from "../../../test/support/db.ts";
import { seedProject } from "../../../test/support/fixtures.ts";
import { verifyAuditChains } from "../../app/audit.ts";
import { eraseReport } from "../../app/erasure.ts";
import { createMember } from "../../app/identity.ts";
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

  it("moves a stored report's chain head into its row and keeps the chain of a report never stored (014)", async () => {
    t = await createTestDb(target, { migrated: false });
    const all = await readMigrations();
    const before = all.findIndex((m) => m.name.startsWith("014_"));
    await migrate(t.db, all.slice(0, before));
    const { project, devices } = await seedProject(t.db, 1);
    const device = devices[0]!.id;
    const [stored, neverStored] = [crypto.randomUUID(), crypto.randomUUID()];
    // What the apply path left before 014: one entry each, heads in audit_chains.
    await t.db.query("insert into reports (project_id, id, fields) values ($1, $2, '{}')", [
      project.id,
      stored,
    ]);
    for (const [report, head] of [
      [stored, "a".repeat(64)],
      [neverStored, "b".repeat(64)],
    ] as const) {
      await t.db.query(
        `insert into audit_log (project_id, change_id, report_id, actor_type, actor_id, outcome,
                                received_at, applied_at, prev_hash, hash)
         values ($1, $2, $3, 'device', $4, 'rejected', now(), now(), null, $5)`,
        [project.id, crypto.randomUUID(), report, device, head],
      );
      await t.db.query(
        "insert into audit_chains (project_id, report_id, head) values ($1, $2, $3)",
        [project.id, report, head],
      );
    }

    expect(await migrate(t.db, all)).toEqual(all.slice(before).map((m) => m.name));
    const [row] = await t.db.query<{ chain_head: string }>(
      "select chain_head from reports where id = $1",
      [stored],
    );
    expect(row!.chain_head).toBe("a".repeat(64));
    const chains = await t.db.query<{ report_id: string }>("select report_id from audit_chains");
    expect(chains.map((c) => c.report_id)).toEqual([neverStored]);
    // A second first entry of either chain is refused.
    await expect(
      t.db.query(
        `insert into audit_log (project_id, change_id, report_id, actor_type, actor_id, outcome,
                                received_at, applied_at, prev_hash, hash)
         values ($1, $2, $3, 'device', $4, 'rejected', now(), now(), null, $5)`,
        [project.id, crypto.randomUUID(), stored, device, "c".repeat(64)],
      ),
    ).rejects.toThrow(/audit_chain_start/);
  });

  it("marks the values of conflicts erased before it as erased, and no others (018)", async () => {
    t = await createTestDb(target, { migrated: false });
    const all = await readMigrations();
    const before = all.findIndex((m) => m.name.startsWith("018_"));
    await migrate(t.db, all.slice(0, before));
    const { project, devices } = await seedProject(t.db, 2);
    const [a, b] = devices.map((d) => d.id);
    const [erased, kept] = [crypto.randomUUID(), crypto.randomUUID()];
    await t.db.query(
      `insert into reports (project_id, id, fields, erased)
       values ($1, $2, '{"patient": null, "pain": null}', '{patient}'), ($1, $3, '{"patient": null}', '{}')`,
      [project.id, erased, kept],
    );
    // An erasure left the first conflict's values null; the others hold nulls written as such.
    for (const [report, field, loser] of [
      [erased, "patient", null],
      [erased, "pain", null],
      [kept, "patient", null],
      [erased, "patient", '"late, not erased"'],
    ] as const) {
      await t.db.query(
        `insert into conflicts (project_id, report_id, field, winner_change_id, winner_device_id, winner_hlc,
                                winner_value, loser_change_id, loser_device_id, loser_hlc, loser_value)
         values ($1, $2, $3, $4, $5, '1', null, $6, $7, '0', $8::jsonb)`,
        [project.id, report, field, crypto.randomUUID(), a, crypto.randomUUID(), b, loser],
      );
    }
    await migrate(t.db, all);
    const rows = await t.db.query(
      `select report_id = $1 as erased_report, field, winner_erased, loser_erased from conflicts
        order by erased_report desc, field, loser_erased desc`,
      [erased],
    );
    expect(rows).toEqual([
      { erased_report: true, field: "pain", winner_erased: false, loser_erased: false },
      { erased_report: true, field: "patient", winner_erased: true, loser_erased: true },
      { erased_report: true, field: "patient", winner_erased: true, loser_erased: false },
      { erased_report: false, field: "patient", winner_erased: false, loser_erased: false },
    ]);
  });

  it("keeps rows written before salts verifying, before and after an erasure (019)", async () => {
    t = await createTestDb(target, { migrated: false });
    const all = await readMigrations();
    await migrate(
      t.db,
      all.slice(
        0,
        all.findIndex((m) => m.name.startsWith("019_")),
      ),
    );
    const { project, devices } = await seedProject(t.db, 1);
    const reportId = crypto.randomUUID();
    // A row as the apply path wrote it before salts: digests of the values alone.
    const at = "2026-12-01T10:00:00.000Z";
    const record = {
      projectId: project.id,
      changeId: crypto.randomUUID(),
      reportId,
      actor: { type: "device" as const, id: devices[0]!.id },
      op: "upsert" as const,
      hlc: `001796100000000:000000:${devices[0]!.id}`,
      outcome: "applied" as const,
      code: null,
      message: null,
      fieldsApplied: ["patient", "ward"],
      fieldsSuperseded: [],
      before: { patient: null, ward: null },
      after: { patient: "Jane Roe", ward: "B2" },
      receivedAt: at,
      appliedAt: at,
      prevHash: null,
      sig: null,
      signedChange: null,
    };
    const hash = hashAuditRecord(record);
    await t.db.query(
      `insert into reports (project_id, id, fields, chain_head) values ($1, $2, $3::jsonb, $4)`,
      [project.id, reportId, JSON.stringify(record.after), hash],
    );
    await t.db.query(
      `insert into audit_log (project_id, change_id, report_id, actor_type, actor_id, op, hlc, outcome,
                              fields_applied, before, after, received_at, applied_at, prev_hash, hash)
       values ($1, $2, $3, 'device', $4, 'upsert', $5, 'applied', $6, $7::jsonb, $8::jsonb, $9, $9, null, $10)`,
      [
        project.id,
        record.changeId,
        reportId,
        record.actor.id,
        record.hlc,
        record.fieldsApplied,
        JSON.stringify(record.before),
        JSON.stringify(record.after),
        at,
        hash,
      ],
    );
    await migrate(t.db, all);
    expect(await verifyAuditChains(t.db, project.id)).toMatchObject({ ok: true, checked: 1 });

    const admin = await createMember(t.db, project.id, "admin", "admin");
    await eraseReport(
      t.db,
      project.id,
      admin.id,
      { reportId, fields: ["patient"], reason: "request" },
      () => Date.parse("2026-12-02T10:00:00.000Z"),
    );
    expect(await verifyAuditChains(t.db, project.id)).toMatchObject({ ok: true, checked: 2 });
    // Such a row has no salt to lose: its erased digest stays the value's own.
    const [row] = await t.db.query<{ erased_digests: Record<string, string>; salts: object }>(
      "select erased_digests, salts from audit_log where change_id = $1",
      [record.changeId],
    );
    expect(row).toEqual({
      erased_digests: { "after:patient": valueDigest("Jane Roe") },
      salts: {},
    });
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
