import type { Queryable } from "../../adapters/db/db.ts";
import type { BatchPlan } from "./plan.ts";

/**
 * Statement 2 of a batch: its reports, audit rows and conflicts, each one
 * set-based insert (or update) in one statement. The plan's records go in as
 * they are, one JSON array each (chain heads too), and are read with jsonb_to_recordset under
 * their own (camelCase) names: no row changes shape on the way. Audit rows
 * take their seq in the order given, which is chain order.
 */
export async function writeBatch(tx: Queryable, plan: BatchPlan): Promise<void> {
  if (plan.audit.length === 0) return;
  // Only the parts this batch needs: a smaller statement plans faster.
  const params: string[] = [];
  const param = (rows: unknown[]) => {
    params.push(JSON.stringify(rows));
    return `$${params.length}::jsonb`;
  };
  const parts: string[] = [];
  const inserted = plan.reports.filter((r) => !r.stored);
  const updated = plan.reports.filter((r) => r.stored);
  if (inserted.length > 0) {
    // A report another consumer created meanwhile fails this on its primary key.
    parts.push(`inserted_reports as (
       insert into reports (project_id, id, fields, clocks, writers, deleted_hlc, version, created_by, updated_by,
              scope)
       select "projectId", id, state->'fields', state->'clocks', state->'writers', state->>'deletedHlc',
              version, "createdBy", "updatedBy", scope
         from jsonb_to_recordset(${param(inserted)}) as r("projectId" uuid, id uuid, state jsonb,
              version integer, "createdBy" uuid, "updatedBy" uuid, scope text))`);
  }
  if (updated.length > 0) {
    parts.push(`updated_reports as (
       update reports set fields = r.state->'fields', clocks = r.state->'clocks', writers = r.state->'writers',
              deleted_hlc = r.state->>'deletedHlc', version = r.version, updated_by = r."updatedBy",
              updated_at = now(), xid = pg_current_xact_id()
         from jsonb_to_recordset(${param(updated)}) as r("projectId" uuid, id uuid, state jsonb,
              version integer, "updatedBy" uuid)
        where reports.project_id = r."projectId" and reports.id = r.id)`);
  }
  parts.push(`written_audit as (
       insert into audit_log (project_id, change_id, report_id, actor_type, actor_id, op, hlc, outcome, code,
              message, fields_applied, fields_superseded, before, after, received_at, applied_at, prev_hash, hash,
              sig, signed_change)
       select "projectId", "changeId", "reportId", actor->>'type', (actor->>'id')::uuid, op, hlc, outcome, code,
              message, "fieldsApplied", "fieldsSuperseded", before, after, "receivedAt", "appliedAt", "prevHash", hash,
              sig, "signedChange"
         from rows from (jsonb_to_recordset(${param(plan.audit)}) as ("projectId" uuid, "changeId" uuid,
              "reportId" uuid, actor jsonb, op text, hlc text, outcome text, code text, message text,
              "fieldsApplied" text[], "fieldsSuperseded" text[], before jsonb, after jsonb,
              "receivedAt" timestamptz, "appliedAt" timestamptz, "prevHash" text, hash text,
              sig text, "signedChange" jsonb))
              with ordinality as a
        -- seq follows the chain order.
        order by a.ordinality)`);
  const newChains = plan.chains.filter((c) => !c.stored);
  const storedChains = plan.chains.filter((c) => c.stored);
  if (newChains.length > 0) {
    // A chain another consumer started meanwhile fails this on its primary key.
    parts.push(`inserted_chains as (
       insert into audit_chains (project_id, report_id, head)
       select "projectId", "reportId", head
         from jsonb_to_recordset(${param(newChains)}) as h("projectId" uuid, "reportId" uuid, head text))`);
  }
  if (storedChains.length > 0) {
    parts.push(`updated_chains as (
       update audit_chains set head = h.head
         from jsonb_to_recordset(${param(storedChains)}) as h("projectId" uuid, "reportId" uuid, head text)
        where audit_chains.project_id = h."projectId" and audit_chains.report_id = h."reportId")`);
  }
  if (plan.conflicts.length > 0) {
    parts.push(`written_conflicts as (
       insert into conflicts (project_id, report_id, field, winner_change_id, winner_device_id, winner_hlc,
              winner_value, loser_change_id, loser_device_id, loser_hlc, loser_value)
       select "projectId", "reportId", field, (winner->>'changeId')::uuid, winner->>'deviceId',
              winner->>'hlc', nullif(winner->'value', 'null'), (loser->>'changeId')::uuid,
              loser->>'deviceId', loser->>'hlc', nullif(loser->'value', 'null')
         from jsonb_to_recordset(${param(plan.conflicts)}) as c("projectId" uuid, "reportId" uuid,
              field text, winner jsonb, loser jsonb)
       -- The same pair of writes replayed is the same conflict.
       on conflict do nothing)`);
  }
  // Data-modifying CTEs run exactly once whether or not the query reads them.
  await tx.query(`with ${parts.join(", ")} select 1`, params);
}
