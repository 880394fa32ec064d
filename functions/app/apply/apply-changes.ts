import { auditHash, digests } from "../../../core/audit.ts";
import type { Change } from "../../../core/change.ts";
import { hlcNode } from "../../../core/hlc.ts";
import type { JsonObject } from "../../../core/json.ts";
import {
  type ConflictDraft,
  emptyReportState,
  mergeChange,
  type Outcome,
  type ReportState,
} from "../../../core/merge.ts";
import type { Ack } from "../../../core/types.ts";
import type { Db, Queryable } from "../../adapters/db/db.ts";

interface ItemBase {
  projectId: string;
  deviceId: string;
  receivedAt: string;
}

/** One change to apply, or one that reached the consumer but can never apply. */
export type ApplyItem =
  | (ItemBase & { change: Change })
  | (ItemBase & {
      changeId: string;
      reportId: string | null;
      rejection: { code: string; message: string };
    });

// A rejected change whose report could not be read is chained under the nil
// UUID, which is never a report's id (ingest refuses it).
const NO_REPORT = "00000000-0000-0000-0000-000000000000";
const changeIdOf = (item: ApplyItem) => ("change" in item ? item.change.changeId : item.changeId);
const reportIdOf = (item: ApplyItem) =>
  "change" in item ? item.change.reportId : (item.reportId ?? NO_REPORT);
const keyOf = (projectId: string, id: string) => `${projectId}:${id}`;

interface StoredReport {
  projectId: string;
  id: string;
  state: ReportState;
  version: number;
  createdBy: string | null;
  updatedBy: string | null;
  /** Whether the row exists: the batch's locks mean nobody else can create it meanwhile. */
  stored: boolean;
  dirty: boolean;
}

interface AuditRow {
  project_id: string;
  change_id: string;
  report_id: string;
  actor_type: "device";
  actor_id: string;
  op: string | null;
  hlc: string | null;
  outcome: Outcome;
  code: string | null;
  message: string | null;
  fields_applied: string[];
  fields_superseded: string[];
  before: JsonObject;
  after: JsonObject;
  received_at: string;
  applied_at: string;
  prev_hash: string | null;
  hash: string;
}

type AuditDraft = Omit<AuditRow, "applied_at" | "prev_hash" | "hash">;

interface ConflictRow extends ConflictDraft {
  projectId: string;
  reportId: string;
}

interface Loaded {
  reports: {
    project_id: string;
    id: string;
    fields: JsonObject;
    clocks: Record<string, string>;
    writers: Record<string, string>;
    deleted_hlc: string | null;
    version: number;
    created_by: string | null;
    updated_by: string | null;
  }[];
  heads: { project_id: string; report_id: string; hash: string | null }[];
  applied: {
    project_id: string;
    change_id: string;
    outcome: Outcome;
    code: string | null;
    message: string | null;
  }[];
}

/**
 * Statement 1: lock and read the batch's reports (SELECT … FOR UPDATE, in one
 * global order so two consumers cannot deadlock; a row another transaction
 * is writing is returned as that transaction committed it), the last hash of
 * each audit chain, and which changes are already in the audit log.
 *
 * What FOR UPDATE cannot lock is caught when writing instead: a report
 * created meanwhile by another consumer (primary key), a chain appended to
 * meanwhile (audit_chain: one successor per row), a change applied meanwhile
 * (audit_change). Each fails the transaction, and the batch is retried.
 */
async function load(
  tx: Queryable,
  chains: { projectId: string; reportId: string }[],
  items: ApplyItem[],
): Promise<Loaded> {
  const [row] = await tx.query<Loaded>(
    // Lateral lookups with LIMIT 1, which the planner keeps as one index
    // probe per key instead of hashing a whole (small, young) table.
    `with k as (select * from unnest($1::uuid[], $2::uuid[]) as k(project_id, report_id)),
          c as (select * from unnest($3::uuid[], $4::uuid[]) as c(project_id, change_id))
     select
       -- A lock held by a stuck transaction becomes a retryable error (55P03), not a hung batch.
       set_config('lock_timeout', '5s', true) as lock_timeout,
       (select coalesce(json_agg(json_build_object(
                'project_id', r.project_id, 'id', r.id, 'fields', r.fields, 'clocks', r.clocks,
                'writers', r.writers, 'deleted_hlc', r.deleted_hlc, 'version', r.version,
                'created_by', r.created_by, 'updated_by', r.updated_by)), '[]')
          from k cross join lateral (select * from reports r
                                      where r.project_id = k.project_id and r.id = k.report_id
                                      limit 1 for update) as r) as reports,
       (select coalesce(json_agg(json_build_object(
                'project_id', k.project_id, 'report_id', k.report_id, 'hash', last.hash)), '[]')
          from k cross join lateral (select hash from audit_log a
                                      where a.project_id = k.project_id and a.report_id = k.report_id
                                      order by a.seq desc limit 1) as last) as heads,
       (select coalesce(json_agg(json_build_object(
                'project_id', a.project_id, 'change_id', a.change_id, 'outcome', a.outcome,
                'code', a.code, 'message', a.message)), '[]')
          -- OFFSET 0 keeps the project test out of the probe, so the only index
          -- that fits is audit_change (change_id first), in every plan.
          from c cross join lateral (select * from audit_log a where a.change_id = c.change_id offset 0) as a
         where a.project_id = c.project_id) as applied`,
    [
      chains.map((c) => c.projectId),
      chains.map((c) => c.reportId),
      items.map((i) => i.projectId),
      items.map(changeIdOf),
    ],
    { name: "apply_load" },
  );
  return row!;
}

/**
 * Statement 2: reports, audit rows and conflicts, each one set-based insert
 * (or update), in one statement. Audit rows take their seq in the order given.
 */
async function write(
  tx: Queryable,
  reports: StoredReport[],
  audit: AuditRow[],
  conflicts: ConflictRow[],
): Promise<void> {
  const reportRows = reports.map((r) => ({
    project_id: r.projectId,
    id: r.id,
    fields: r.state.fields,
    clocks: r.state.clocks,
    writers: r.state.writers,
    deleted_hlc: r.state.deletedHlc,
    version: r.version,
    created_by: r.createdBy,
    updated_by: r.updatedBy,
  }));
  const conflictRows = conflicts.map((c) => ({
    project_id: c.projectId,
    report_id: c.reportId,
    field: c.field,
    winner_change_id: c.winner.changeId,
    winner_device_id: c.winner.deviceId,
    winner_hlc: c.winner.hlc,
    winner_value: c.winner.value,
    loser_change_id: c.loser.changeId,
    loser_device_id: c.loser.deviceId,
    loser_hlc: c.loser.hlc,
    loser_value: c.loser.value,
  }));
  // Only the parts this batch needs: a smaller statement plans faster.
  const params: string[] = [];
  const param = (rows: unknown[]) => {
    params.push(JSON.stringify(rows));
    return `$${params.length}::jsonb`;
  };
  const parts: string[] = [];
  const inserted = reportRows.filter((_, i) => !reports[i]!.stored);
  const updated = reportRows.filter((_, i) => reports[i]!.stored);
  if (inserted.length > 0) {
    // A report another consumer created meanwhile fails this on its primary key.
    parts.push(`inserted_reports as (
       insert into reports (project_id, id, fields, clocks, writers, deleted_hlc, version, created_by, updated_by)
       select * from jsonb_to_recordset(${param(inserted)}) as r(project_id uuid, id uuid, fields jsonb,
              clocks jsonb, writers jsonb, deleted_hlc text, version integer, created_by uuid, updated_by uuid))`);
  }
  if (updated.length > 0) {
    parts.push(`updated_reports as (
       update reports set fields = r.fields, clocks = r.clocks, writers = r.writers, deleted_hlc = r.deleted_hlc,
              version = r.version, updated_by = r.updated_by, updated_at = now(), xid = pg_current_xact_id()
         from jsonb_to_recordset(${param(updated)}) as r(project_id uuid, id uuid, fields jsonb, clocks jsonb,
              writers jsonb, deleted_hlc text, version integer, updated_by uuid)
        where reports.project_id = r.project_id and reports.id = r.id)`);
  }
  parts.push(`written_audit as (
       insert into audit_log (project_id, change_id, report_id, actor_type, actor_id, op, hlc, outcome, code,
              message, fields_applied, fields_superseded, before, after, received_at, applied_at, prev_hash, hash)
       select project_id, change_id, report_id, actor_type, actor_id, op, hlc, outcome, code,
              message, fields_applied, fields_superseded, before, after, received_at, applied_at, prev_hash, hash
         from rows from (jsonb_to_recordset(${param(audit)}) as (project_id uuid, change_id uuid,
              report_id uuid, actor_type text, actor_id uuid, op text, hlc text, outcome text, code text,
              message text, fields_applied text[], fields_superseded text[], before jsonb, after jsonb,
              received_at timestamptz, applied_at timestamptz, prev_hash text, hash text))
              with ordinality as a
        -- seq follows the chain order.
        order by a.ordinality)`);
  if (conflictRows.length > 0) {
    parts.push(`written_conflicts as (
       insert into conflicts (project_id, report_id, field, winner_change_id, winner_device_id, winner_hlc,
              winner_value, loser_change_id, loser_device_id, loser_hlc, loser_value)
       select * from jsonb_to_recordset(${param(conflictRows)}) as c(project_id uuid, report_id uuid,
              field text, winner_change_id uuid, winner_device_id text, winner_hlc text, winner_value jsonb,
              loser_change_id uuid, loser_device_id text, loser_hlc text, loser_value jsonb)
       -- The same pair of writes replayed is the same conflict.
       on conflict do nothing)`);
  }
  // Data-modifying CTEs run exactly once whether or not the query reads them.
  await tx.query(`with ${parts.join(", ")} select 1`, params);
}

// Messages of one ingest request share their receive time: normalise it once.
let lastReceived = { raw: "", iso: "" };
function normalisedReceivedAt(raw: string): string {
  if (raw !== lastReceived.raw) lastReceived = { raw, iso: new Date(raw).toISOString() };
  return lastReceived.iso;
}

function draftOf(item: ApplyItem): AuditDraft {
  const change = "change" in item ? item.change : undefined;
  return {
    project_id: item.projectId,
    change_id: changeIdOf(item),
    report_id: reportIdOf(item),
    actor_type: "device",
    actor_id: item.deviceId,
    op: change?.op ?? null,
    hlc: change?.hlc ?? null,
    outcome: "rejected",
    code: null,
    message: null,
    fields_applied: [],
    fields_superseded: [],
    before: {},
    after: {},
    // Normalised to milliseconds, as it reads back from timestamptz when verifying.
    received_at: normalisedReceivedAt(item.receivedAt),
  };
}

/** Why a change that reached the consumer can never apply, or undefined when it can. */
function rejectionOf(item: ApplyItem): { code: string; message: string } | undefined {
  if (!("change" in item)) return item.rejection;
  // Ingest checks this too; repeat it where the write happens.
  if (hlcNode(item.change.hlc) !== item.deviceId) {
    return { code: "hlc_node_mismatch", message: "the HLC node must be the sending device's id" };
  }
  return undefined;
}

/**
 * Applies a batch of changes in one transaction of two statements, however
 * large the batch: lock and read the batch's reports, merge each
 * change with per-field last-writer-wins (`core/merge.ts`) in order, then
 * write reports, hash-chained audit rows and conflicts. A change id already
 * in the audit log is a no-op that returns its recorded outcome.
 *
 * Throws only when the whole batch must be retried (the database failed);
 * a change that can never apply is recorded as `rejected`.
 *
 * @returns the outcome of each change, in input order.
 * @example
 * const acks = await applyChanges(db, [{ projectId, deviceId, receivedAt, change }]);
 */
export async function applyChanges(
  db: Db,
  items: ApplyItem[],
  now: () => number = Date.now,
): Promise<Ack[]> {
  if (items.length === 0) return [];
  // Sorted: every consumer locks reports in the same order.
  const chains = [
    ...new Map(
      items.map((i) => [
        keyOf(i.projectId, reportIdOf(i)),
        { projectId: i.projectId, reportId: reportIdOf(i) },
      ]),
    ),
  ]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([, chain]) => chain);
  return db.transaction(async (tx) => {
    const loading = load(tx, chains, items);
    // While the database works: each item's audit row draft, and the digest
    // of every value the changes carry (every value an "after" can hold).
    const drafts = items.map(draftOf);
    const incoming = new Map<Change, Record<string, string>>();
    for (const item of items) {
      if ("change" in item && item.change.op === "upsert") {
        incoming.set(item.change, digests(item.change.fields));
      }
    }
    const loaded = await loading;

    const acks = new Map<string, Ack>(
      loaded.applied.map((a) => [
        keyOf(a.project_id, a.change_id),
        {
          changeId: a.change_id,
          outcome: a.outcome,
          ...(a.code ? { code: a.code, message: a.message ?? "" } : {}),
        },
      ]),
    );
    const reports = new Map<string, StoredReport>(
      loaded.reports.map((r) => [
        keyOf(r.project_id, r.id),
        {
          projectId: r.project_id,
          id: r.id,
          state: {
            fields: r.fields,
            clocks: r.clocks,
            writers: r.writers,
            deletedHlc: r.deleted_hlc,
          },
          version: r.version,
          createdBy: r.created_by,
          updatedBy: r.updated_by,
          stored: true,
          dirty: false,
        },
      ]),
    );
    const chainHeads = new Map(loaded.heads.map((h) => [keyOf(h.project_id, h.report_id), h.hash]));
    const appliedAt = new Date(now()).toISOString();
    const audit: AuditRow[] = [];
    const conflicts: ConflictRow[] = [];

    const append = (draft: AuditDraft, changeDigests?: Record<string, string>) => {
      const chain = keyOf(draft.project_id, draft.report_id);
      const prevHash = chainHeads.get(chain) ?? null;
      const hash = auditHash({
        prevHash,
        projectId: draft.project_id,
        changeId: draft.change_id,
        reportId: draft.report_id,
        actor: { type: draft.actor_type, id: draft.actor_id },
        op: draft.op,
        hlc: draft.hlc,
        outcome: draft.outcome,
        code: draft.code,
        fieldsApplied: draft.fields_applied,
        fieldsSuperseded: draft.fields_superseded,
        beforeDigests: digests(draft.before),
        afterDigests: !changeDigests
          ? digests(draft.after)
          : draft.fields_superseded.length === 0
            ? changeDigests // every field applied: "after" is the change itself
            : Object.fromEntries(Object.keys(draft.after).map((f) => [f, changeDigests[f]!])),
        receivedAt: draft.received_at,
        appliedAt,
      });
      chainHeads.set(chain, hash);
      const row = draft as AuditRow;
      row.applied_at = appliedAt;
      row.prev_hash = prevHash;
      row.hash = hash;
      audit.push(row);
    };

    for (const [index, item] of items.entries()) {
      const key = keyOf(item.projectId, changeIdOf(item));
      if (acks.has(key)) continue; // applied before, or earlier in this batch
      const draft = drafts[index]!;
      const rejection = rejectionOf(item);
      if (rejection || !("change" in item)) {
        append(Object.assign(draft, rejection));
        acks.set(key, { changeId: changeIdOf(item), outcome: "rejected", ...rejection });
        continue;
      }
      const { change } = item;
      const reportKey = keyOf(item.projectId, change.reportId);
      const report = reports.get(reportKey) ?? {
        projectId: item.projectId,
        id: change.reportId,
        state: emptyReportState(),
        version: 0,
        createdBy: null,
        updatedBy: null,
        stored: false,
        dirty: false,
      };
      const result = mergeChange(report.state, change);
      if (result.outcome !== "superseded") {
        report.version += 1;
        report.createdBy ??= item.deviceId;
        report.updatedBy = item.deviceId;
      }
      report.dirty ||= result.state !== report.state || result.outcome !== "superseded";
      report.state = result.state;
      reports.set(reportKey, report);
      draft.outcome = result.outcome;
      draft.fields_applied = result.fieldsApplied;
      draft.fields_superseded = result.fieldsSuperseded;
      draft.before = result.before;
      draft.after = result.after;
      append(draft, incoming.get(change));
      for (const conflict of result.conflicts)
        conflicts.push({ ...conflict, projectId: item.projectId, reportId: change.reportId });
      acks.set(key, { changeId: change.changeId, outcome: result.outcome });
    }

    if (audit.length > 0) {
      await write(
        tx,
        [...reports.values()].filter((r) => r.dirty),
        audit,
        conflicts,
      );
    }
    return items.map((item) => acks.get(keyOf(item.projectId, changeIdOf(item)))!);
  });
}
