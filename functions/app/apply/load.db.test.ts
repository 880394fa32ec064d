import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { formatHlc } from "../../../core/hlc.ts";
import { createTestDb, dbTargets, type TestDb } from "../../../test/support/db.ts";
import { seedProject } from "../../../test/support/fixtures.ts";
import { nodes, type PlanNode } from "../../../test/support/plans.ts";
import type { Db, QueryOptions } from "../../adapters/db/db.ts";
import { verifyAuditChains } from "../audit.ts";
import { type ApplyItem, applyChanges } from "./apply-changes.ts";
import { LOAD_SQL, READ_SQL } from "./load.ts";

// The load statement is prepared once per connection and its plan cached:
// after five executions PostgreSQL may keep a generic plan, costed on
// whatever statistics the tables had. On a new database they have none.
describe.each(dbTargets().filter((t) => t !== "data-api"))(
  "the load statement's plan on a fresh, never-analysed database (%s)",
  (target) => {
    let t: TestDb;
    let projectId: string;
    let deviceId: string;
    const reportIds = Array.from({ length: 40 }, () => crypto.randomUUID());
    beforeAll(async () => {
      t = await createTestDb(target);
      const seeded = await seedProject(t.db, 1);
      projectId = seeded.project.id;
      deviceId = seeded.devices[0]!.id;
    });
    afterAll(() => t.drop());

    const batch = (ids: string[], wall: number): ApplyItem[] =>
      ids.map((reportId, i) => ({
        projectId,
        deviceId,
        receivedAt: new Date().toISOString(),
        change: {
          changeId: crypto.randomUUID(),
          reportId,
          op: "upsert",
          hlc: formatHlc({ wall: wall + i, counter: 0, node: deviceId }),
          fields: { title: `at ${wall}` },
        },
      }));

    it("probes one row per key through the one index that fits, generic or custom, after many executions", async () => {
      // Many batches first (new reports, then edits of them), as a new deployment runs.
      for (let round = 0; round < 12; round++) {
        const ids = reportIds.slice((round % 4) * 10, (round % 4) * 10 + 10);
        await applyChanges(t.db, batch(ids, 1_000_000 + round * 100));
      }
      // Both forms: the read on its own, and the load under locks.
      const plans = await t.db.transaction(async (tx) => {
        const found: Record<string, PlanNode[]> = {};
        for (const [name, sql] of Object.entries({ read: READ_SQL, load: LOAD_SQL })) {
          await tx.exec(`prepare load_probe(uuid[], uuid[], uuid[], uuid[]) as ${sql}`);
          const keys = [...reportIds.slice(0, 5), crypto.randomUUID()];
          const args = [
            keys.map(() => projectId),
            keys,
            keys.map(() => projectId),
            keys.map(() => crypto.randomUUID()),
          ]
            .map((ids) => `array[${ids.map((id) => `'${id}'`).join(", ")}]::uuid[]`)
            .join(", ");
          for (const mode of ["force_generic_plan", "force_custom_plan"]) {
            await tx.exec(`set local plan_cache_mode = ${mode}`);
            const [row] = await tx.query<{ "QUERY PLAN": unknown }>(
              `explain (format json) execute load_probe(${args})`,
            );
            const raw = row!["QUERY PLAN"];
            const [top] = (typeof raw === "string" ? JSON.parse(raw) : raw) as [{ Plan: PlanNode }];
            found[`${name}, ${mode}`] = [...nodes(top.Plan)];
          }
          await tx.exec("deallocate load_probe");
        }
        return found;
      });
      expect(Object.keys(plans)).toHaveLength(4);
      for (const plan of Object.values(plans)) {
        const indexes = plan.flatMap((n) => (n["Index Name"] ? [n["Index Name"]] : [])).sort();
        expect(indexes).toEqual(["audit_chains_pkey", "audit_change", "reports_pkey"]);
        expect(plan.map((n) => n["Node Type"])).not.toContain("Seq Scan");
        expect(plan.map((n) => n["Node Type"])).not.toContain("Bitmap Heap Scan");
        expect(plan.map((n) => n["Node Type"])).not.toContain("Hash Join");
      }
      // And what those batches wrote chains as it should.
      expect(await verifyAuditChains(t.db, projectId)).toEqual({
        ok: true,
        checked: 120,
        signed: 0,
        unsigned: 120,
        complete: true,
        nextCursor: null,
      });
      const [heads] = await t.db.query<{ n: number }>(
        `select count(*)::int as n from reports r
          where chain_head = (select hash from audit_log a where a.project_id = r.project_id
                                 and a.report_id = r.id order by seq desc limit 1)`,
      );
      expect(heads!.n).toBe(40);
    });

    // The batch's write statement, captured instead of run, then explained
    // as the prepared statement it runs as, both ways it can be planned.
    const writePlans = async (items: ApplyItem[]) => {
      const writes: { sql: string; params: readonly unknown[]; name?: string }[] = [];
      const capturing: Db = {
        ...t.db,
        async query<R>(sql: string, params?: readonly unknown[], options?: QueryOptions) {
          if (sql === READ_SQL) return t.db.query<R>(sql, params, options);
          writes.push({ sql, params: params ?? [], name: options?.name });
          return [];
        },
      };
      await applyChanges(capturing, items);
      expect(writes).toHaveLength(1);
      const [{ sql, params, name }] = writes as [(typeof writes)[number]];
      expect(name).toMatch(/^apply_write/);
      const literal = (value: unknown) => `'${String(value).replaceAll("'", "''")}'`;
      return t.db.transaction(async (tx) => {
        await tx.exec(`prepare write_probe as ${sql}`);
        const found: PlanNode[][] = [];
        for (const mode of ["force_generic_plan", "force_custom_plan"]) {
          await tx.exec(`set local plan_cache_mode = ${mode}`);
          const [row] = await tx.query<{ "QUERY PLAN": unknown }>(
            `explain (format json) execute write_probe(${params.map(literal).join(", ")})`,
          );
          const raw = row!["QUERY PLAN"];
          const [top] = (typeof raw === "string" ? JSON.parse(raw) : raw) as [{ Plan: PlanNode }];
          found.push([...nodes(top.Plan)]);
        }
        await tx.exec("deallocate write_probe");
        return found;
      });
    };
    const written = (plan: PlanNode[]) =>
      plan.flatMap((n) => (n["Node Type"] === "ModifyTable" ? [n["Relation Name"]] : [])).sort();
    const scans = (plan: PlanNode[]) =>
      plan.filter((n) => n["Relation Name"] !== undefined && n["Node Type"] !== "ModifyTable");

    it("has the write find every row through its primary key, with no table to join or scan, generic plan or custom", async () => {
      // Edits of stored reports: their rows and chain heads exist.
      for (const plan of await writePlans(batch(reportIds.slice(0, 10), 3_000_000))) {
        expect(written(plan)).toEqual(["audit_log", "reports"]);
        expect(scans(plan)).toEqual([]);
      }
    });

    it("moves only the chain head of a stored report whose changes were all refused, through its primary key", async () => {
      // Stamped with another device's clock: refused, so only the chains move.
      const refused = batch(reportIds.slice(0, 10), 4_000_000).map((item) =>
        "change" in item
          ? {
              ...item,
              change: {
                ...item.change,
                hlc: formatHlc({ wall: 4_000_000, counter: 0, node: crypto.randomUUID() }),
              },
            }
          : item,
      );
      for (const plan of await writePlans(refused)) {
        expect(written(plan)).toEqual(["audit_log", "reports"]);
        expect(scans(plan)).toEqual([]);
      }
    });
  },
);

// JIT exists on the server only.
describe.each(dbTargets().filter((t) => t === "postgres"))("connections to %s", (target) => {
  it("run without JIT, which on tables without statistics compiled every statement", async () => {
    const t = await createTestDb(target, { migrated: false });
    try {
      const [row] = await t.db.query<{ jit: string }>("show jit");
      expect(row!.jit).toBe("off");
    } finally {
      await t.drop();
    }
  });
});
