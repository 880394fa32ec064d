import { createHash } from "node:crypto";
import { auditHash, digests } from "../../core/audit.ts";
import type { Change } from "../../core/change.ts";
import { parseHlc } from "../../core/hlc.ts";
import type { JsonObject } from "../../core/json.ts";
import {
  type ConflictDraft,
  emptyReportState,
  mergeChange,
  type Outcome,
  type ReportState,
} from "../../core/merge.ts";
import type { Ack } from "../../core/types.ts";
import type { Db, Queryable } from "./db/db.ts";

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

const changeIdOf = (item: ApplyItem) => ("change" in item ? item.change.changeId : item.changeId);
// A rejected change whose report could not be read is chained under the nil
// UUID, which is never a report's id (ingest refuses it).
const NO_REPORT = "00000000-0000-0000-0000-000000000000";
const reportIdOf = (item: ApplyItem) =>
  "change" in item ? item.change.reportId : (item.reportId ?? NO_REPORT);
const keyOf = (projectId: string, id: string) => `${projectId}:${id}`;

interface StoredReport {
  state: ReportState;
  version: number;
  createdBy: string | null;
  updatedBy: string | null;
  dirty: boolean;
  isNew: boolean;
}

interface AuditRow {
  project_id: string;
  change_id: string;
  report_id: string | null;
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
  before_digests: Record<string, string>;
  after_digests: Record<string, string>;
  received_at: string;
  applied_at: string;
  prev_hash: string | null;
  hash: string;
}

/** Advisory lock key of a report: the first 8 bytes of its SHA-256, as a signed bigint. */
function lockKey(projectId: string, reportId: string): bigint {
  return createHash("sha256").update(keyOf(projectId, reportId)).digest().readBigInt64BE(0);
}

async function findApplied(tx: Queryable, items: ApplyItem[]): Promise<Map<string, Ack>> {
  const rows = await tx.query<{
    project_id: string;
    change_id: string;
    outcome: Outcome;
    code: string | null;
    message: string | null;
  }>(
    `select a.project_id, a.change_id, a.outcome, a.code, a.message
       from audit_log a
       join unnest($1::uuid[], $2::uuid[]) as k(project_id, change_id)
         on a.project_id = k.project_id and a.change_id = k.change_id`,
    [items.map((i) => i.projectId), items.map(changeIdOf)],
  );
  return new Map(
    rows.map((r) => [
      keyOf(r.project_id, r.change_id),
      {
        changeId: r.change_id,
        outcome: r.outcome,
        ...(r.code ? { code: r.code, message: r.message ?? "" } : {}),
      },
    ]),
  );
}

async function lockAndLoad(tx: Queryable, keys: { projectId: string; reportId: string }[]) {
  // A lock held by a stuck transaction becomes a retryable error (55P03), not a hung batch.
  await tx.query("select set_config('lock_timeout', '5s', true)");
  // Lock in one global order so two consumers can never deadlock. An advisory
  // lock also covers reports that do not exist yet, which FOR UPDATE cannot.
  const locks = keys
    .map((k) => lockKey(k.projectId, k.reportId))
    .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  await tx.query(
    "select count(pg_advisory_xact_lock(k)) from unnest($1::bigint[]) with ordinality as t(k, n)",
    [locks.map(String)],
  );
  const rows = await tx.query<{
    project_id: string;
    id: string;
    fields: JsonObject;
    clocks: Record<string, string>;
    writers: Record<string, string>;
    deleted_hlc: string | null;
    version: number;
    created_by: string | null;
    updated_by: string | null;
  }>(
    `select r.project_id, r.id, r.fields, r.clocks, r.writers, r.deleted_hlc, r.version, r.created_by, r.updated_by
       from reports r
       join unnest($1::uuid[], $2::uuid[]) as k(project_id, id) on r.project_id = k.project_id and r.id = k.id`,
    [keys.map((k) => k.projectId), keys.map((k) => k.reportId)],
  );
  const heads = await tx.query<{ project_id: string; report_id: string; hash: string | null }>(
    `select k.project_id, k.report_id, last.hash
       from unnest($1::uuid[], $2::uuid[]) as k(project_id, report_id)
       cross join lateral (select hash from audit_log a
                            where a.project_id = k.project_id and a.report_id = k.report_id
                            order by a.seq desc limit 1) as last`,
    [keys.map((k) => k.projectId), keys.map((k) => k.reportId)],
  );
  const chainHeads = new Map(heads.map((h) => [keyOf(h.project_id, h.report_id), h.hash]));
  const reports = new Map<string, StoredReport>();
  for (const r of rows) {
    reports.set(keyOf(r.project_id, r.id), {
      state: { fields: r.fields, clocks: r.clocks, writers: r.writers, deletedHlc: r.deleted_hlc },
      version: r.version,
      createdBy: r.created_by,
      updatedBy: r.updated_by,
      dirty: false,
      isNew: false,
    });
  }
  return { reports, chainHeads };
}

type AuditDraft = Omit<
  AuditRow,
  "before_digests" | "after_digests" | "applied_at" | "prev_hash" | "hash"
>;

function auditRow(item: ApplyItem): AuditDraft {
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
    received_at: new Date(item.receivedAt).toISOString(),
  };
}

function rejectedRow(item: ApplyItem, code: string, message: string): AuditDraft {
  return { ...auditRow(item), outcome: "rejected", code, message };
}

/**
 * Applies a batch of changes in one transaction: locks their reports, merges
 * each change with per-field last-writer-wins (`core/merge.ts`), and writes
 * reports, audit rows and conflicts with a fixed number of set-based
 * statements, whatever the batch size. A change id already in the audit log
 * is a no-op that returns its recorded outcome.
 *
 * Throws only when the whole batch must be retried (the database failed);
 * a change that can never apply is recorded as `rejected`.
 *
 * @returns the outcome of each change, by change id, in input order.
 */
export async function applyChanges(
  db: Db,
  items: ApplyItem[],
  now: () => number = Date.now,
): Promise<Ack[]> {
  if (items.length === 0) return [];
  return db.transaction(async (tx) => {
    const done = await findApplied(tx, items);
    const fresh: ApplyItem[] = [];
    const seen = new Set<string>();
    for (const item of items) {
      const key = keyOf(item.projectId, changeIdOf(item));
      if (done.has(key) || seen.has(key)) continue;
      seen.add(key);
      fresh.push(item);
    }

    // Every chain the batch appends to is locked, including rejected changes'.
    const touched = new Map<string, { projectId: string; reportId: string }>();
    for (const item of fresh) {
      const reportId = reportIdOf(item);
      touched.set(keyOf(item.projectId, reportId), { projectId: item.projectId, reportId });
    }
    const { reports, chainHeads } = await lockAndLoad(tx, [...touched.values()]);

    const appliedAt = new Date(now()).toISOString();
    const audit: AuditRow[] = [];
    const append = (draft: AuditDraft) => {
      const chain = keyOf(draft.project_id, draft.report_id ?? NO_REPORT);
      const prevHash = chainHeads.get(chain) ?? null;
      const beforeDigests = digests(draft.before);
      const afterDigests = digests(draft.after);
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
        beforeDigests,
        afterDigests,
        receivedAt: draft.received_at,
        appliedAt,
      });
      chainHeads.set(chain, hash);
      audit.push({
        ...draft,
        before_digests: beforeDigests,
        after_digests: afterDigests,
        applied_at: appliedAt,
        prev_hash: prevHash,
        hash,
      });
    };
    const conflicts: (ConflictDraft & { projectId: string; reportId: string })[] = [];
    const acks = new Map<string, Ack>(done);
    for (const item of fresh) {
      const key = keyOf(item.projectId, changeIdOf(item));
      if (!("change" in item)) {
        append(rejectedRow(item, item.rejection.code, item.rejection.message));
        acks.set(key, { changeId: changeIdOf(item), outcome: "rejected", ...item.rejection });
        continue;
      }
      const { change } = item;
      if (parseHlc(change.hlc)?.node !== item.deviceId) {
        // Ingest checks this too; repeat it where the write happens.
        const rejection = {
          code: "hlc_node_mismatch",
          message: "the HLC node must be the sending device's id",
        };
        append(rejectedRow(item, rejection.code, rejection.message));
        acks.set(key, { changeId: change.changeId, outcome: "rejected", ...rejection });
        continue;
      }
      const reportKey = keyOf(item.projectId, change.reportId);
      const report: StoredReport = reports.get(reportKey) ?? {
        state: emptyReportState(),
        version: 0,
        createdBy: null,
        updatedBy: null,
        dirty: false,
        isNew: true,
      };
      const result = mergeChange(report.state, change);
      const changedState = result.state !== report.state;
      report.state = result.state;
      if (result.outcome !== "superseded") {
        report.version += 1;
        report.createdBy ??= item.deviceId;
        report.updatedBy = item.deviceId;
      }
      report.dirty ||= changedState || result.outcome !== "superseded";
      reports.set(reportKey, report);
      append({
        ...auditRow(item),
        outcome: result.outcome,
        fields_applied: result.fieldsApplied,
        fields_superseded: result.fieldsSuperseded,
        before: result.before,
        after: result.after,
      });
      for (const conflict of result.conflicts) {
        conflicts.push({ ...conflict, projectId: item.projectId, reportId: change.reportId });
      }
      acks.set(key, { changeId: change.changeId, outcome: result.outcome });
    }

    await writeReports(tx, reports);
    await writeAudit(tx, audit);
    await writeConflicts(tx, conflicts);
    return items.map((item) => acks.get(keyOf(item.projectId, changeIdOf(item)))!);
  });
}

async function writeReports(tx: Queryable, reports: Map<string, StoredReport>): Promise<void> {
  const rows = [...reports.entries()]
    .filter(([, r]) => r.dirty)
    .map(([key, r]) => {
      const [project_id, id] = key.split(":");
      return {
        project_id,
        id,
        fields: r.state.fields,
        clocks: r.state.clocks,
        writers: r.state.writers,
        deleted_hlc: r.state.deletedHlc,
        version: r.version,
        created_by: r.createdBy,
        updated_by: r.updatedBy,
      };
    });
  if (rows.length === 0) return;
  await tx.query(
    `insert into reports (project_id, id, fields, clocks, writers, deleted_hlc, version, created_by, updated_by)
     select project_id, id, fields, clocks, writers, deleted_hlc, version, created_by, updated_by
       from jsonb_to_recordset($1::jsonb) as r(project_id uuid, id uuid, fields jsonb, clocks jsonb, writers jsonb,
            deleted_hlc text, version integer, created_by uuid, updated_by uuid)
     on conflict (project_id, id) do update set
       fields = excluded.fields, clocks = excluded.clocks, writers = excluded.writers,
       deleted_hlc = excluded.deleted_hlc, version = excluded.version, updated_by = excluded.updated_by,
       updated_at = now(), xid = pg_current_xact_id()`,
    [JSON.stringify(rows)],
  );
}

async function writeAudit(tx: Queryable, rows: AuditRow[]): Promise<void> {
  if (rows.length === 0) return;
  await tx.query(
    `insert into audit_log (project_id, change_id, report_id, actor_type, actor_id, op, hlc, outcome, code, message,
            fields_applied, fields_superseded, before, after, before_digests, after_digests, received_at, applied_at,
            prev_hash, hash)
     select project_id, change_id, report_id, actor_type, actor_id, op, hlc, outcome, code, message,
            array(select jsonb_array_elements_text(fields_applied)),
            array(select jsonb_array_elements_text(fields_superseded)),
            before, after, before_digests, after_digests, received_at, applied_at, prev_hash, hash
       from rows from (jsonb_to_recordset($1::jsonb) as (project_id uuid, change_id uuid, report_id uuid,
            actor_type text, actor_id uuid, op text, hlc text, outcome text, code text, message text,
            fields_applied jsonb, fields_superseded jsonb, before jsonb, after jsonb, before_digests jsonb,
            after_digests jsonb, received_at timestamptz, applied_at timestamptz, prev_hash text, hash text))
            with ordinality as r
      -- seq follows the order the changes were applied in.
      order by r.ordinality`,
    [JSON.stringify(rows)],
  );
}

async function writeConflicts(
  tx: Queryable,
  conflicts: (ConflictDraft & { projectId: string; reportId: string })[],
): Promise<void> {
  if (conflicts.length === 0) return;
  const rows = conflicts.map((c) => ({
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
  await tx.query(
    `insert into conflicts (project_id, report_id, field, winner_change_id, winner_device_id, winner_hlc, winner_value,
            loser_change_id, loser_device_id, loser_hlc, loser_value)
     select project_id, report_id, field, winner_change_id, winner_device_id, winner_hlc, winner_value,
            loser_change_id, loser_device_id, loser_hlc, loser_value
       from jsonb_to_recordset($1::jsonb) as c(project_id uuid, report_id uuid, field text, winner_change_id uuid,
            winner_device_id text, winner_hlc text, winner_value jsonb, loser_change_id uuid, loser_device_id text,
            loser_hlc text, loser_value jsonb)
     on conflict do nothing`,
    [JSON.stringify(rows)],
  );
}
