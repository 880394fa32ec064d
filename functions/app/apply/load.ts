import type { Outcome } from "../../../core/merge.ts";
import type { Queryable } from "../../adapters/db/db.ts";
import type { LoadedBatch, ReportRecord } from "./plan.ts";

export interface BatchKeys {
  /** The batch's reports (its audit chains), in one global order. */
  chains: { projectId: string; reportId: string }[];
  /** The batch's changes. */
  changes: { projectId: string; changeId: string }[];
}

interface LoadedRow {
  reports: Omit<ReportRecord, "stored">[];
  heads: LoadedBatch["heads"];
  applied: {
    projectId: string;
    changeId: string;
    outcome: Outcome;
    code: string | null;
    message: string | null;
  }[];
}

/**
 * Statement 1 of a batch: lock and read its reports (SELECT … FOR UPDATE, in
 * one global order so two consumers cannot deadlock; a row another
 * transaction is writing is returned as that transaction committed it), the
 * last hash of each audit chain, and which changes are already in the audit
 * log. Rows come back in the shapes the plan uses.
 *
 * What FOR UPDATE cannot lock is caught when writing instead: a report
 * created meanwhile by another consumer (primary key), a chain appended to
 * meanwhile (audit_chain: one successor per row), a change applied meanwhile
 * (audit_change). Each fails the transaction, and the batch is retried.
 */
export async function loadBatch(
  tx: Queryable,
  { chains, changes }: BatchKeys,
): Promise<LoadedBatch> {
  const [row] = await tx.query<LoadedRow>(
    // Lateral lookups with LIMIT 1, which the planner keeps as one index
    // probe per key instead of hashing a whole (small, young) table.
    `with k as (select * from unnest($1::uuid[], $2::uuid[]) as k(project_id, report_id)),
          c as (select * from unnest($3::uuid[], $4::uuid[]) as c(project_id, change_id))
     select
       -- A lock held by a stuck transaction becomes a retryable error (55P03), not a hung batch.
       set_config('lock_timeout', '5s', true) as lock_timeout,
       (select coalesce(json_agg(json_build_object(
                'projectId', r.project_id, 'id', r.id, 'version', r.version,
                'createdBy', r.created_by, 'updatedBy', r.updated_by,
                'state', json_build_object('fields', r.fields, 'clocks', r.clocks,
                                           'writers', r.writers, 'deletedHlc', r.deleted_hlc))), '[]')
          from k cross join lateral (select * from reports r
                                      where r.project_id = k.project_id and r.id = k.report_id
                                      limit 1 for update) as r) as reports,
       (select coalesce(json_agg(json_build_object(
                'projectId', k.project_id, 'reportId', k.report_id, 'hash', last.hash)), '[]')
          from k cross join lateral (select hash from audit_log a
                                      where a.project_id = k.project_id and a.report_id = k.report_id
                                      order by a.seq desc limit 1) as last) as heads,
       (select coalesce(json_agg(json_build_object(
                'projectId', a.project_id, 'changeId', a.change_id, 'outcome', a.outcome,
                'code', a.code, 'message', a.message)), '[]')
          -- OFFSET 0 keeps the project test out of the probe, so the only index
          -- that fits is audit_change (change_id first), in every plan.
          from c cross join lateral (select * from audit_log a where a.change_id = c.change_id offset 0) as a
         where a.project_id = c.project_id) as applied`,
    [
      chains.map((c) => c.projectId),
      chains.map((c) => c.reportId),
      changes.map((c) => c.projectId),
      changes.map((c) => c.changeId),
    ],
    { name: "apply_load" },
  );
  const { reports, heads, applied } = row!;
  return {
    reports: reports.map((r) => ({ ...r, stored: true })),
    heads,
    applied: applied.map(({ code, message, ...ack }) => ({
      ...ack,
      ...(code ? { code, message: message ?? "" } : {}),
    })),
  };
}
