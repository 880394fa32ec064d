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

// Lateral lookups with LIMIT 1, which the planner keeps as one index probe
// per key instead of hashing a whole (small, young) table.
export const LOAD_SQL = `with k as (select * from unnest($1::uuid[], $2::uuid[]) as k(project_id, report_id)),
          c as (select * from unnest($3::uuid[], $4::uuid[]) as c(project_id, change_id))
     select
       -- A lock held by a stuck transaction becomes a retryable error (55P03), not a hung batch.
       set_config('lock_timeout', '5s', true) as lock_timeout,
       -- The write that follows joins its rows to reports and audit_chains by
       -- primary key. Estimating from a young or never-analysed table, the
       -- planner would hash the whole table instead, and pay for every row
       -- of it on each batch; for the rest of this transaction only index
       -- probes are planned.
       set_config('enable_seqscan', 'off', true) as enable_seqscan,
       set_config('enable_hashjoin', 'off', true) as enable_hashjoin,
       set_config('enable_mergejoin', 'off', true) as enable_mergejoin,
       (select coalesce(json_agg(json_build_object(
                'projectId', r.project_id, 'id', r.id, 'version', r.version,
                'createdBy', r.created_by, 'updatedBy', r.updated_by, 'scope', r.scope,
                'state', json_build_object('fields', r.fields, 'clocks', r.clocks,
                                           'writers', r.writers, 'deletedHlc', r.deleted_hlc))), '[]')
          -- reports_pkey (id, project_id) is the only index led by id.
          from k cross join lateral (select * from reports r
                                      where r.id = k.report_id and (r.project_id = k.project_id) is true
                                      limit 1 for update) as r) as reports,
       (select coalesce(json_agg(json_build_object(
                'projectId', h.project_id, 'reportId', h.report_id, 'hash', h.head)), '[]')
          -- audit_chains has one index, its primary key.
          from k cross join lateral (select * from audit_chains h
                                      where h.project_id = k.project_id and h.report_id = k.report_id
                                      for update) as h) as heads,
       (select coalesce(json_agg(json_build_object(
                'projectId', a.project_id, 'changeId', a.change_id, 'outcome', a.outcome,
                'code', a.code, 'message', a.message)), '[]')
          -- OFFSET 0 keeps the project test out of the probe, so the only index
          -- that fits is audit_change (change_id first).
          from c cross join lateral (select * from audit_log a where a.change_id = c.change_id offset 0) as a
         where a.project_id = c.project_id) as applied`;

/**
 * Statement 1 of a batch: lock and read its reports and the heads of its
 * audit chains (SELECT … FOR UPDATE, in one global order so two consumers
 * cannot deadlock; a row another transaction is writing is returned as that
 * transaction committed it), and which changes are already in the audit
 * log. Rows come back in the shapes the plan uses.
 *
 * What FOR UPDATE cannot lock is caught when writing instead: a report or
 * chain created meanwhile by another consumer (primary keys), a change
 * applied meanwhile (audit_change). Each fails the transaction, and the
 * batch is retried.
 *
 * Each lookup is written so that exactly one index can serve it (the project
 * test as `(a = b) is true`, or behind OFFSET 0, is no index condition), so
 * the plan is right on an empty, never-analysed database too, generic or
 * custom (`load.db.test.ts`). It also turns off sequential scans and hash
 * and merge joins for the rest of the transaction, so the write joins the
 * batch to its rows by primary key too.
 */
export async function loadBatch(
  tx: Queryable,
  { chains, changes }: BatchKeys,
): Promise<LoadedBatch> {
  const [row] = await tx.query<LoadedRow>(
    LOAD_SQL,
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
