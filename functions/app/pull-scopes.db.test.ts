import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { formatHlc } from "../../core/hlc.ts";
import { createTestDb, dbTargets, type TestDb } from "../../test/support/db.ts";
import { seedProject } from "../../test/support/fixtures.ts";
import { nodes, type PlanNode } from "../../test/support/plans.ts";
import { type ApplyItem, applyChanges } from "./apply/apply-changes.ts";
import { setDeviceScopes } from "./identity.ts";
import { ORDERED_INDEX_SCANS_ONLY, pull } from "./pull.ts";
import { SCOPED_ROWS_SQL, scopedRowsParams } from "./pull-scopes.ts";

// The EXPLAIN of a scoped pull on a fresh, never-analysed database: the
// planner knows nothing of the tables, so only the query's shape can keep
// it on the scope index.
describe.each(dbTargets())("a scoped pull (%s)", (target) => {
  let t: TestDb;
  let projectId: string;
  let writer: string;
  let reader: string;
  beforeAll(async () => {
    t = await createTestDb(target);
    const seeded = await seedProject(t.db, 2);
    projectId = seeded.project.id;
    writer = seeded.devices[0]!.id;
    reader = seeded.devices[1]!.id;
  });
  afterAll(() => t.drop());

  const create = (scope: string, n: number, wall: number): ApplyItem[] =>
    Array.from({ length: n }, (_, i) => ({
      projectId,
      deviceId: writer,
      receivedAt: new Date().toISOString(),
      change: {
        changeId: crypto.randomUUID(),
        reportId: crypto.randomUUID(),
        op: "upsert",
        hlc: formatHlc({ wall: wall + i, counter: 0, node: writer }),
        fields: { title: `${scope} ${i}` },
        scope,
      },
    }));

  it("reads the reports of the device's scopes through the scope index only, in pages that miss nothing", async () => {
    for (let s = 0; s < 6; s++)
      await applyChanges(t.db, create(`site-${s}`, 7, 1_000_000 + s * 100));
    await setDeviceScopes(t.db, projectId, reader, ["site-1", "site-4"], null);

    const plan = await t.db.transaction(async (tx) => {
      const [{ xmin }] = (await tx.query<{ xmin: string }>(
        `select pg_snapshot_xmin(pg_current_snapshot())::text as xmin, ${ORDERED_INDEX_SCANS_ONLY}`,
      )) as [{ xmin: string }];
      const [row] = await tx.query<{ "QUERY PLAN": [{ Plan: PlanNode }] }>(
        `explain (format json) ${SCOPED_ROWS_SQL}`,
        scopedRowsParams(["site-1", "site-4"], {
          projectId,
          after: ["0", "00000000-0000-0000-0000-000000000000"],
          xmin,
          limit: 1001,
        }),
      );
      return row!["QUERY PLAN"][0].Plan;
    });
    const scans = [...nodes(plan)].filter((n) => n["Relation Name"] === "reports");
    expect(scans.map((n) => [n["Node Type"], n["Index Name"]])).toEqual([
      [expect.stringMatching(/^Index (Only )?Scan$/), "reports_scope_pull"],
      ["Index Scan", "reports_pkey"],
    ]);
    expect([...nodes(plan)].map((n) => n["Node Type"])).not.toContain("Seq Scan");

    // Pages of 5 deliver the 14 reports of the two sites, each once.
    const seen: string[] = [];
    let cursor: string | undefined;
    for (let page = 0; page < 10; page++) {
      const answer = await pull(t.db, { projectId, deviceId: reader, cursor, limit: 5 });
      seen.push(...answer.reports.map((r) => `${r.scope} ${r.fields.title}`));
      cursor = answer.cursor;
      if (!answer.hasMore) break;
    }
    expect(seen.sort()).toEqual(
      ["site-1", "site-4"]
        .flatMap((s) => Array.from({ length: 7 }, (_, i) => `${s} ${s} ${i}`))
        .sort(),
    );
  });
});
