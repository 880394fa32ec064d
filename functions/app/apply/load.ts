import type { Outcome } from "../../../core/merge.ts";
import { RETENTION_ACTOR } from "../../../core/wire-custody.ts";
import type { Queryable } from "../../adapters/db/db.ts";
import { type ErasedField, EVERY_FIELD } from "./erased-fields.ts";
import { keyOf, type LoadedBatch, type ReportRecord } from "./plan.ts";

export interface BatchKeys {
  /** The batch's reports (its audit chains), in one global order. */
  chains: { projectId: string; reportId: string }[];
  /** The batch's changes. */
  changes: { projectId: string; changeId: string }[];
}

interface LoadedRow {
  reports: ReportRecord[];
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
const loadSql = (
  lock: boolean,
) => `with k as (select * from unnest($1::uuid[], $2::uuid[]) as k(project_id, report_id)),
          c as (select * from unnest($3::uuid[], $4::uuid[]) as c(project_id, change_id))
     select
       ${
         lock
           ? // A lock held by a stuck transaction becomes a retryable error (55P03), not a hung batch.
             "set_config('lock_timeout', '5s', true) as lock_timeout,"
           : ""
       }
       (select coalesce(json_agg(json_build_object(
                'projectId', r.project_id, 'id', r.id, 'version', r.version, 'xid', r.xid::text,
                'createdBy', r.created_by, 'updatedBy', r.updated_by, 'scope', r.scope, 'chainHead', r.chain_head,
                'erased', r.erased,
                'state', json_build_object('fields', r.fields, 'clocks', r.clocks,
                                           'writers', r.writers, 'deletedHlc', r.deleted_hlc))), '[]')
          -- reports_pkey (id, project_id) is the only index led by id.
          from k cross join lateral (select * from reports r
                                      where r.id = k.report_id and (r.project_id = k.project_id) is true
                                      limit 1 ${lock ? "for update" : ""}) as r) as reports,
       (select coalesce(json_agg(json_build_object(
                'projectId', h.project_id, 'reportId', h.report_id, 'hash', h.head)), '[]')
          -- Chains of reports not stored; audit_chains has one index, its primary key.
          from k cross join lateral (select * from audit_chains h
                                      where h.project_id = k.project_id and h.report_id = k.report_id
                                      limit 1 ${lock ? "for update" : ""}) as h) as heads,
       (select coalesce(json_agg(json_build_object(
                'projectId', a.project_id, 'changeId', a.change_id, 'outcome', a.outcome,
                'code', a.code, 'message', a.message)), '[]')
          -- OFFSET 0 keeps the project test out of the probe, so the only index
          -- that fits is audit_change (change_id first).
          from c cross join lateral (select * from audit_log a where a.change_id = c.change_id offset 0) as a
         where a.project_id = c.project_id) as applied`;

/**
 * When each erased field of the given reports was last erased, in ms, and
 * `EVERY_FIELD` for a report retention erased: one probe per report of
 * erasures_report, the only index led by report_id.
 */
export const ERASURES_SQL = `select e.project_id as "projectId", e.report_id as "reportId", f.field,
          (extract(epoch from max(e.requested_at)) * 1000)::bigint::text as at
     from unnest($1::uuid[], $2::uuid[]) as k(project_id, report_id)
     cross join lateral (select * from erasures e
                          where e.report_id = k.report_id and (e.project_id = k.project_id) is true) as e
     cross join unnest(case when e.requested_by = '${RETENTION_ACTOR}' then array['${EVERY_FIELD}']
                            else e.fields end) as f(field)
    group by 1, 2, 3`;

/** The load under locks, in the batch's transaction. */
export const LOAD_SQL = loadSql(true);
/** The same read without locks, on its own: the write then checks nothing changed. */
export const READ_SQL = loadSql(false);

/**
 * Statement 1 of a batch: read its reports and the heads of its audit
 * chains (a stored report's in its row, others' in audit_chains), and which
 * changes are already in the audit log, in the shapes the plan uses. For a
 * report with erased fields, or deleted, a second statement reads when each
 * was erased (`ERASURES_SQL`).
 *
 * With `lock`, in the batch's transaction: SELECT … FOR UPDATE, in one
 * global order so two consumers cannot deadlock (a row another transaction
 * is writing is returned as that transaction committed it). Without, on its
 * own: the write checks that each report's xid and each chain's head are
 * still those read (write.ts).
 *
 * What neither can see is caught when writing: a report or chain created
 * meanwhile by another consumer, a change applied meanwhile (audit_change).
 *
 * Each lookup is written so that exactly one index can serve it (the project
 * test as `(a = b) is true`, or behind OFFSET 0, is no index condition), so
 * the plan is right on an empty, never-analysed database too, generic or
 * custom (`load.db.test.ts`).
 */
export async function loadBatch(
  db: Queryable,
  { chains, changes }: BatchKeys,
  { lock }: { lock: boolean },
): Promise<LoadedBatch> {
  const [row] = await db.query<LoadedRow>(
    lock ? LOAD_SQL : READ_SQL,
    [
      chains.map((c) => c.projectId),
      chains.map((c) => c.reportId),
      changes.map((c) => c.projectId),
      changes.map((c) => c.changeId),
    ],
    { name: lock ? "apply_load" : "apply_read" },
  );
  const { reports, heads, applied } = row!;
  // Only a report with erased fields, or a deleted one (retention may have
  // erased it with none left), has erasures to read (rarely any).
  const erased = reports.filter((r) => (r.erased?.length ?? 0) > 0 || r.state.deletedHlc);
  const erasures =
    erased.length === 0
      ? []
      : await db.query<ErasedField>(
          ERASURES_SQL,
          [erased.map((r) => r.projectId), erased.map((r) => r.id)],
          { name: "apply_erasures" },
        );
  // A stored report's chain head is in its row; in audit_chains only for a
  // report stored without one (by code from before migration 014, in the
  // minutes a deployment runs both).
  const fromChains = new Map(heads.map((h) => [keyOf(h.projectId, h.reportId), h]));
  return {
    reports,
    heads: [
      ...reports.flatMap((r) => {
        const key = keyOf(r.projectId, r.id);
        const hash = r.chainHead ?? fromChains.get(key)?.hash;
        fromChains.delete(key);
        return hash ? [{ projectId: r.projectId, reportId: r.id, hash }] : [];
      }),
      ...fromChains.values(),
    ],
    applied: applied.map(({ code, message, ...ack }) => ({
      ...ack,
      ...(code ? { code, message: message ?? "" } : {}),
    })),
    erasures: erasures.map((e) => ({ ...e, at: Number(e.at) })),
  };
}
