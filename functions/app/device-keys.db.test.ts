import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDb, dbTargets, type TestDb } from "../../test/support/db.ts";
import { seedProject } from "../../test/support/fixtures.ts";
import { nodes, type PlanNode } from "../../test/support/plans.ts";
import { deviceWriteRules, WRITE_RULES_SQL } from "./device-keys.ts";

// Ingest runs this query on every push, with the ids of up to 500 reports,
// in a project that only grows and may never have been analysed.
describe.each(dbTargets().filter((t) => t !== "data-api"))(
  "what a push is checked against, in a grown, never-analysed project (%s)",
  (target) => {
    let t: TestDb;
    let projectId: string;
    let deviceId: string;
    const stored: { id: string; scope: string | null }[] = [];
    beforeAll(async () => {
      t = await createTestDb(target);
      const seeded = await seedProject(t.db, 1);
      projectId = seeded.project.id;
      deviceId = seeded.devices[0]!.id;
      // Enough pages that a sequential scan is a plan the planner weighs.
      await t.db.query(
        `insert into reports (project_id, id, fields, scope)
         select $1, gen_random_uuid(), jsonb_build_object('title', 'report ' || g),
                case when g % 2 = 0 then 'site-' || (g % 7) end
           from generate_series(1, 3000) as g`,
        [projectId],
      );
      stored.push(
        ...(await t.db.query<{ id: string; scope: string | null }>(
          "select id, scope from reports where project_id = $1 order by id limit 3",
          [projectId],
        )),
      );
    });
    afterAll(() => t.drop());

    it("reads each report of the push by its key, not the whole table", async () => {
      const ids = [
        ...stored.map((r) => r.id),
        ...Array.from({ length: 97 }, () => crypto.randomUUID()),
      ];
      const [row] = await t.db.query<{ "QUERY PLAN": unknown }>(
        `explain (format json) ${WRITE_RULES_SQL}`,
        [deviceId, projectId, ids],
      );
      const raw = row!["QUERY PLAN"];
      const [top] = (typeof raw === "string" ? JSON.parse(raw) : raw) as [{ Plan: PlanNode }];
      const plan = [...nodes(top.Plan)];
      expect(plan.map((n) => n["Node Type"])).not.toContain("Seq Scan");
      expect(plan.filter((n) => n["Relation Name"] === "reports").length).toBeGreaterThan(0);
      const indexes = new Set(plan.flatMap((n) => (n["Index Name"] ? [n["Index Name"]] : [])));
      expect(indexes).toEqual(new Set(["devices_pkey", "reports_pkey"]));
    });

    it("answers the scope of each stored report of the push, and nothing for the rest", async () => {
      const unknown = crypto.randomUUID();
      const rules = await deviceWriteRules(t.db, {
        projectId,
        deviceId,
        reportIds: [...stored.map((r) => r.id), unknown],
      });
      expect(Object.fromEntries(rules.reportScopes)).toEqual(
        Object.fromEntries(stored.map((r) => [r.id, r.scope])),
      );
      expect(rules.reportScopes.has(unknown)).toBe(false);
      // A report of another project is not this project's.
      const other = await seedProject(t.db, 1);
      const elsewhere = await deviceWriteRules(t.db, {
        projectId: other.project.id,
        deviceId: other.devices[0]!.id,
        reportIds: stored.map((r) => r.id),
      });
      expect(elsewhere.reportScopes.size).toBe(0);
    });
  },
);
