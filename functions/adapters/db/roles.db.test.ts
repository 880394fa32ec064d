import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDb, dbTargets, type TestDb } from "../../../test/support/db.ts";
import { grantAppRole } from "./roles.ts";

// Roles are made by the migrate function through pg, never through the Data API.
describe.each(dbTargets().filter((target) => target !== "data-api"))(
  "the functions' database role (%s)",
  (target) => {
    let t: TestDb;
    const role = `edge_sync_app_${crypto.randomUUID().slice(0, 8)}`;
    beforeAll(async () => {
      t = await createTestDb(target);
    });
    afterAll(async () => {
      await t.db.exec(`drop owned by ${role}; drop role if exists ${role}`);
      await t.drop();
    });

    const can = async (table: string, privilege: string) => {
      const [row] = await t.db.query<{ ok: boolean }>(
        "select has_table_privilege($1, $2, $3) as ok",
        [role, table, privilege],
      );
      return row!.ok;
    };

    it("may read and write the data, owns nothing, and cannot touch the migrations record", async () => {
      await grantAppRole(t.db, role, "first password");
      await grantAppRole(t.db, role, "second 'password'"); // again: updates, does not fail
      const [login] = await t.db.query<{
        rolcanlogin: boolean;
        rolsuper: boolean;
        rolconfig: string[];
      }>("select rolcanlogin, rolsuper, rolconfig from pg_roles where rolname = $1", [role]);
      // Without JIT, as every statement of the functions is a few index probes.
      expect(login).toEqual({ rolcanlogin: true, rolsuper: false, rolconfig: ["jit=off"] });
      expect(await can("reports", "insert")).toBe(true);
      expect(await can("audit_log", "select")).toBe(true);
      expect(await can("audit_log", "truncate")).toBe(false);
      expect(await can("schema_migrations", "select")).toBe(false);
      const [owned] = await t.db.query<{ n: number }>(
        "select count(*)::int as n from pg_tables where tableowner = $1",
        [role],
      );
      expect(owned!.n).toBe(0);
    });

    it("refuses a role name that is not a plain identifier", async () => {
      await expect(grantAppRole(t.db, "app; drop table reports", "x")).rejects.toThrow(
        /plain role name/,
      );
    });
  },
);
