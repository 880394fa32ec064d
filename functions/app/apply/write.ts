import type { Queryable } from "../../adapters/db/db.ts";
import { type BatchPlan, keyOf } from "./plan.ts";

/**
 * Statement 2 of a batch: its reports, audit rows and conflicts, each one
 * set-based insert (or upsert) in one statement. The plan's records go in as
 * they are, one JSON array each (chain heads too), and are read with
 * jsonb_to_recordset under their own (camelCase) names: no row changes shape
 * on the way. Audit rows take their seq in the order given, which is chain
 * order.
 *
 * Every row is found through its primary key (upserts: nothing to join, so
 * no plan can hash a table), and the statement checks what the batch read:
 * each report's xid and each chain's head must still be those read (none,
 * for a new one). If any changed, it raises 40001 and writes nothing, and
 * the batch is applied again under locks. A change applied meanwhile fails
 * it on audit_change.
 */
export async function writeBatch(db: Queryable, plan: BatchPlan): Promise<void> {
  if (plan.audit.length === 0) return;
  // Only the parts this batch needs, and nothing of the batch in the text:
  // each of the four shapes is one named prepared statement, parsed and
  // planned once per connection (its plan joins nothing, so the generic
  // plan is the custom one).
  const params: string[] = [];
  const param = (value: unknown) => {
    params.push(JSON.stringify(value));
    return `$${params.length}`;
  };
  const parts: string[] = [];
  const checks: string[] = [];
  // What the batch read, by key; `(select $n::jsonb)` parses each once, not per row.
  if (plan.reports.length > 0) {
    const read = Object.fromEntries(
      plan.reports.flatMap((r) => (r.xid ? [[keyOf(r.projectId, r.id), r.xid]] : [])),
    );
    parts.push(`written_reports as (
       insert into reports (project_id, id, fields, clocks, writers, deleted_hlc, version, created_by, updated_by,
              scope)
       select "projectId", id, state->'fields', state->'clocks', state->'writers', state->>'deletedHlc',
              version, "createdBy", "updatedBy", scope
         from jsonb_to_recordset(${param(plan.reports)}::jsonb) as r("projectId" uuid, id uuid, state jsonb,
              version integer, "createdBy" uuid, "updatedBy" uuid, scope text)
       on conflict (id, project_id) do update
          set fields = excluded.fields, clocks = excluded.clocks, writers = excluded.writers,
              deleted_hlc = excluded.deleted_hlc, version = excluded.version, updated_by = excluded.updated_by,
              updated_at = now(), xid = pg_current_xact_id()
        where reports.xid = ((select ${param(read)}::jsonb) ->> (reports.project_id || ':' || reports.id))::xid8
       returning 1)`);
    checks.push(`(select count(*) from written_reports) = ${param(plan.reports.length)}::integer`);
  }
  parts.push(`written_audit as (
       insert into audit_log (project_id, change_id, report_id, actor_type, actor_id, op, hlc, outcome, code,
              message, fields_applied, fields_superseded, before, after, received_at, applied_at, prev_hash, hash,
              sig, signed_change)
       select "projectId", "changeId", "reportId", actor->>'type', (actor->>'id')::uuid, op, hlc, outcome, code,
              message, "fieldsApplied", "fieldsSuperseded", before, after, "receivedAt", "appliedAt", "prevHash", hash,
              sig, "signedChange"
         from rows from (jsonb_to_recordset(${param(plan.audit)}::jsonb) as ("projectId" uuid, "changeId" uuid,
              "reportId" uuid, actor jsonb, op text, hlc text, outcome text, code text, message text,
              "fieldsApplied" text[], "fieldsSuperseded" text[], before jsonb, after jsonb,
              "receivedAt" timestamptz, "appliedAt" timestamptz, "prevHash" text, hash text,
              sig text, "signedChange" jsonb))
              with ordinality as a
        -- seq follows the chain order.
        order by a.ordinality)`);
  const found = Object.fromEntries(
    plan.chains.flatMap((c) => (c.found ? [[keyOf(c.projectId, c.reportId), c.found]] : [])),
  );
  parts.push(`written_chains as (
       insert into audit_chains (project_id, report_id, head)
       select "projectId", "reportId", head
         from jsonb_to_recordset(${param(plan.chains)}::jsonb) as h("projectId" uuid, "reportId" uuid, head text)
       on conflict (project_id, report_id) do update set head = excluded.head
        where audit_chains.head = (select ${param(found)}::jsonb) ->> (audit_chains.project_id || ':' || audit_chains.report_id)
       returning 1)`);
  checks.push(`(select count(*) from written_chains) = ${param(plan.chains.length)}::integer`);
  if (plan.conflicts.length > 0) {
    parts.push(`written_conflicts as (
       insert into conflicts (project_id, report_id, field, winner_change_id, winner_device_id, winner_hlc,
              winner_value, loser_change_id, loser_device_id, loser_hlc, loser_value)
       select "projectId", "reportId", field, (winner->>'changeId')::uuid, winner->>'deviceId',
              winner->>'hlc', nullif(winner->'value', 'null'), (loser->>'changeId')::uuid,
              loser->>'deviceId', loser->>'hlc', nullif(loser->'value', 'null')
         from jsonb_to_recordset(${param(plan.conflicts)}::jsonb) as c("projectId" uuid, "reportId" uuid,
              field text, winner jsonb, loser jsonb)
       -- The same pair of writes replayed is the same conflict.
       on conflict do nothing)`);
  }
  // Evaluated left to right: the lock timeout is set before any row is
  // written (a lock held by a stuck transaction becomes a retryable error,
  // 55P03, not a hung batch); the checks read the upserts, which runs them;
  // data-modifying CTEs the query does not read run after it, exactly once.
  await db.query(
    `with ${parts.join(", ")}
     select apply_unchanged(set_config('lock_timeout', '5s', true) is not null and ${checks.join(" and ")})`,
    params,
    { name: writeName(plan) },
  );
}

/** The prepared statement a batch's write runs as: one per shape. */
const writeName = (plan: BatchPlan) =>
  `apply_write${plan.reports.length > 0 ? "_reports" : ""}${plan.conflicts.length > 0 ? "_conflicts" : ""}`;
