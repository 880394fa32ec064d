import type { Queryable } from "../../adapters/db/db.ts";
import { type BatchPlan, keyOf } from "./plan.ts";

/**
 * Statement 2 of a batch: its reports (with their chain heads), audit rows,
 * the heads of chains whose report is not stored, and conflicts, each one
 * set-based insert (or upsert) in one statement. The plan's records go in as
 * they are, one JSON array each, and are read with jsonb_to_recordset under
 * their own (camelCase) names: no row changes shape on the way. Audit rows
 * take their seq in the order given, which is chain order.
 *
 * Every row is found through its primary key (upserts: nothing to join, so
 * no plan can hash a table), and the statement checks what the batch read:
 * each report's xid and each chain's head must still be those read (none,
 * for a new one). If any changed, it raises 40001 and writes nothing, and
 * the batch is applied again under locks. A change applied meanwhile fails
 * it on audit_change, and a chain begun meanwhile on audit_chain_start.
 */
export async function writeBatch(db: Queryable, plan: BatchPlan): Promise<void> {
  if (plan.audit.length === 0) return;
  // Only the parts this batch needs, and nothing of the batch in the text:
  // each shape is one named prepared statement, parsed and planned once per
  // connection (its plan joins nothing, so the generic plan is the custom
  // one).
  const params: string[] = [];
  const param = (value: unknown) => {
    params.push(JSON.stringify(value));
    return `$${params.length}`;
  };
  const parts: string[] = [];
  const checks: string[] = [];
  // The chain heads the batch read, by key: those a report's row held, and
  // those audit_chains did. `(select $n::jsonb)` parses it once, not per row.
  const read: Record<"rows" | "chains", Record<string, string>> = { rows: {}, chains: {} };
  for (const c of plan.chains) {
    if (c.found)
      read[c.at === "report" ? "rows" : "chains"][keyOf(c.projectId, c.reportId)] = c.found;
  }
  const heads = param(read);
  const headRead = (held: keyof typeof read, table: string, reportId: string) =>
    `(select ${heads}::jsonb) -> '${held}' ->> (${table}.project_id || ':' || ${table}.${reportId})`;
  if (plan.reports.length > 0) {
    const xids = Object.fromEntries(
      plan.reports.flatMap((r) => (r.xid ? [[keyOf(r.projectId, r.id), r.xid]] : [])),
    );
    parts.push(`written_reports as (
       insert into reports (project_id, id, fields, clocks, writers, deleted_hlc, deleted_xid, version, created_by,
              updated_by, scope, chain_head)
       select "projectId", id, state->'fields', state->'clocks', state->'writers', state->>'deletedHlc',
              case when state->>'deletedHlc' is not null then pg_current_xact_id() end,
              version, "createdBy", "updatedBy", scope, "chainHead"
         from jsonb_to_recordset(${param(plan.reports)}::jsonb) as r("projectId" uuid, id uuid, state jsonb,
              version integer, "createdBy" uuid, "updatedBy" uuid, scope text, "chainHead" text)
       on conflict (id, project_id) do update
          set fields = excluded.fields, clocks = excluded.clocks, writers = excluded.writers,
              deleted_hlc = excluded.deleted_hlc, version = excluded.version, updated_by = excluded.updated_by,
              -- When it was deleted, for the live count's tally (016_tallies.sql).
              deleted_xid = case when reports.deleted_hlc is null then excluded.deleted_xid else reports.deleted_xid end,
              chain_head = excluded.chain_head, updated_at = now(), xid = pg_current_xact_id()
        where reports.xid = ((select ${param(xids)}::jsonb) ->> (reports.project_id || ':' || reports.id))::xid8
          and reports.chain_head is not distinct from ${headRead("rows", "reports", "id")}
       returning 1)`);
    checks.push(`(select count(*) from written_reports) = ${param(plan.reports.length)}::integer`);
  }
  // Stored reports whose chain moved on while their state did not (every
  // change to them refused or superseded): the head alone, in place (no
  // indexed column changes, so a heap-only update), the xid kept, so no
  // device pulls them again. An upsert, like the reports above, so the row
  // is found through the primary key; should a row have vanished since it
  // was read (reports are never deleted), the insert is caught, not kept.
  const rewritten = new Set(plan.reports.map((r) => keyOf(r.projectId, r.id)));
  const moved = plan.chains.filter(
    (c) => c.at !== "chains" && !rewritten.has(keyOf(c.projectId, c.reportId)),
  );
  if (moved.length > 0) {
    parts.push(`written_heads as (
       insert into reports (project_id, id, chain_head)
       select "projectId", "reportId", head
         from jsonb_to_recordset(${param(moved)}::jsonb) as h("projectId" uuid, "reportId" uuid, head text)
       on conflict (id, project_id) do update set chain_head = excluded.chain_head
        where reports.chain_head is not distinct from ${headRead("rows", "reports", "id")}
       -- xmax is 0 on a row inserted, not on one updated.
       returning xmax <> 0 as updated)`);
    checks.push(
      `(select count(*) filter (where updated) from written_heads) = ${param(moved.length)}::integer`,
    );
  }
  parts.push(`written_audit as (
       insert into audit_log (project_id, change_id, report_id, actor_type, actor_id, op, hlc, outcome, code,
              message, fields_applied, fields_superseded, before, after, received_at, applied_at, prev_hash, hash,
              sig, signed_change, erased_digests, seed, salts)
       select "projectId", "changeId", "reportId", actor->>'type', (actor->>'id')::uuid, op, hlc, outcome, code,
              message, "fieldsApplied", "fieldsSuperseded", before, after, "receivedAt", "appliedAt", "prevHash", hash,
              sig, "signedChange", coalesce("erasedDigests", '{}'), seed, coalesce(salts, '{}')
         from rows from (jsonb_to_recordset(${param(plan.audit)}::jsonb) as ("projectId" uuid, "changeId" uuid,
              "reportId" uuid, actor jsonb, op text, hlc text, outcome text, code text, message text,
              "fieldsApplied" text[], "fieldsSuperseded" text[], before jsonb, after jsonb,
              "receivedAt" timestamptz, "appliedAt" timestamptz, "prevHash" text, hash text,
              sig text, "signedChange" jsonb, "erasedDigests" jsonb, seed text, salts jsonb))
              with ordinality as a
        -- seq follows the chain order.
        order by a.ordinality)`);
  const unstored = plan.chains.filter((c) => c.at !== "report");
  if (unstored.length > 0) {
    parts.push(`written_chains as (
       insert into audit_chains (project_id, report_id, head)
       select "projectId", "reportId", head
         from jsonb_to_recordset(${param(unstored)}::jsonb) as h("projectId" uuid, "reportId" uuid, head text)
       on conflict (project_id, report_id) do update set head = excluded.head
        where audit_chains.head = ${headRead("chains", "audit_chains", "report_id")}
       returning 1)`);
    checks.push(`(select count(*) from written_chains) = ${param(unstored.length)}::integer`);
  }
  if (plan.conflicts.length > 0) {
    parts.push(`written_conflicts as (
       insert into conflicts (project_id, report_id, field, winner_change_id, winner_device_id, winner_hlc,
              winner_value, winner_erased, loser_change_id, loser_device_id, loser_hlc, loser_value, loser_erased)
       select "projectId", "reportId", field, (winner->>'changeId')::uuid, winner->>'deviceId',
              winner->>'hlc', nullif(winner->'value', 'null'), winner ? 'erased', (loser->>'changeId')::uuid,
              loser->>'deviceId', loser->>'hlc', nullif(loser->'value', 'null'), loser ? 'erased'
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
    { name: writeName(parts) },
  );
}

/** The prepared statement a batch's write runs as: one per shape. */
const writeName = (parts: string[]) =>
  `apply_write_${parts.map((p) => p.slice("written_".length, p.indexOf(" as ("))).join("_")}`;
