import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Change } from "../../../core/change.ts";
import { parseHlc } from "../../../core/hlc.ts";
import type { JsonObject } from "../../../core/json.ts";
import { emptyReportState, mergeChange, type ReportState } from "../../../core/merge.ts";
import { changeSets, deliveries } from "../../../core/testing/arbitraries.ts";
import { referenceState } from "../../../core/testing/reference.ts";
import { createTestDb, dbTargets, type TestDb } from "../../../test/support/db.ts";
import { seedProject } from "../../../test/support/fixtures.ts";
import { runs } from "../../../test/support/runs.ts";
import { verifyAuditChains } from "../audit.ts";
import { applyChanges } from "./apply-changes.ts";

/** Fresh change and report ids, so every run writes rows of its own. */
function renamed(changes: Change[]): Change[] {
  const ids = new Map<string, string>();
  const fresh = (id: string) => {
    if (!ids.has(id)) ids.set(id, crypto.randomUUID());
    return ids.get(id)!;
  };
  return changes.map((c) => ({ ...c, changeId: fresh(c.changeId), reportId: fresh(c.reportId) }));
}

/** Splits a delivery into consecutive SQS batches of 1 to 10 messages. */
const batched = (delivery: Change[]) =>
  fc
    .array(fc.integer({ min: 1, max: 10 }), {
      minLength: delivery.length,
      maxLength: delivery.length,
    })
    .map((sizes) => {
      const batches: Change[][] = [];
      for (let i = 0, b = 0; i < delivery.length; i += sizes[b++]!)
        batches.push(delivery.slice(i, i + sizes[b]!));
      return batches;
    });

describe.each(dbTargets())("applyChanges properties on %s", (target) => {
  let t: TestDb;
  let projectId: string;
  beforeAll(async () => {
    t = await createTestDb(target);
    projectId = (await seedProject(t.db, 0)).project.id;
  });
  afterAll(() => t.drop());

  it("persists exactly what core/merge and the reference model compute, with one audit row per change", async () => {
    await fc.assert(
      fc.asyncProperty(
        changeSets(20)
          .map(renamed)
          .chain((changes) =>
            deliveries(changes).chain((d) => fc.tuple(fc.constant(changes), batched(d))),
          ),
        async ([changes, batches]) => {
          for (const batch of batches) {
            await applyChanges(
              t.db,
              batch.map((change) => ({
                projectId,
                deviceId: parseHlc(change.hlc)!.node,
                receivedAt: new Date().toISOString(),
                change,
              })),
            );
          }
          const reportIds = [...new Set(changes.map((c) => c.reportId))];
          const rows = await t.db.query<{
            id: string;
            fields: JsonObject;
            clocks: Record<string, string>;
            writers: Record<string, string>;
            deleted_hlc: string | null;
          }>(
            "select id, fields, clocks, writers, deleted_hlc from reports where id = any($1::uuid[])",
            [reportIds],
          );
          const stored = new Map<string, ReportState>(
            rows.map((r) => [
              r.id,
              { fields: r.fields, clocks: r.clocks, writers: r.writers, deletedHlc: r.deleted_hlc },
            ]),
          );
          const merged = new Map<string, ReportState>();
          for (const c of changes)
            merged.set(
              c.reportId,
              mergeChange(merged.get(c.reportId) ?? emptyReportState(), c).state,
            );
          expect(stored).toEqual(merged);
          expect(stored).toEqual(referenceState(changes));

          const audit = await t.db.query<{ change_id: string; n: number }>(
            "select change_id, count(*)::int as n from audit_log where change_id = any($1::uuid[]) group by change_id",
            [changes.map((c) => c.changeId)],
          );
          expect(audit).toHaveLength(changes.length);
          expect(audit.every((a) => a.n === 1)).toBe(true);
        },
      ),
      { numRuns: runs("PROPERTY_RUNS", 1000, 400) },
    );
    expect((await verifyAuditChains(t.db, projectId)).ok).toBe(true);
  }, 300_000);
});
