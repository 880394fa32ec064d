import { type AuditRecord, digests, hashAuditRecord } from "../../../core/audit.ts";
import { type Change, scopeRejection } from "../../../core/change.ts";
import { hlcNode } from "../../../core/hlc.ts";
import {
  type ConflictDraft,
  emptyReportState,
  mergeChange,
  type ReportState,
} from "../../../core/merge.ts";
import type { Ack } from "../../../core/wire.ts";
import {
  type ErasedField,
  eraseInConflict,
  eraseInRecord,
  lateErasedFields,
} from "./erased-fields.ts";
import { afterDigestsOf, type PreparedChange, prepareChange } from "./prepare.ts";

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

/** An item read once: what every later step needs of it, whichever kind it is. */
interface Entry {
  item: ApplyItem;
  projectId: string;
  changeId: string;
  reportId: string;
  change: Change | undefined;
  /** Why an item that could not be read as a change never applies. */
  unreadable: { code: string; message: string } | undefined;
}

/** An item read once. Its ids as PostgreSQL writes them (lower case). */
export function entryOf(item: ApplyItem): Entry {
  return "change" in item
    ? {
        item,
        projectId: item.projectId.toLowerCase(),
        changeId: item.change.changeId.toLowerCase(),
        reportId: item.change.reportId.toLowerCase(),
        change: item.change,
        unreadable: undefined,
      }
    : {
        item,
        projectId: item.projectId.toLowerCase(),
        changeId: item.changeId.toLowerCase(),
        reportId: (item.reportId ?? NO_REPORT).toLowerCase(),
        change: undefined,
        unreadable: item.rejection,
      };
}

/**
 * A report's or change's key within a batch: the ids as PostgreSQL writes
 * them (lower case), so a change naming its report in capitals finds the
 * stored row.
 */
export const keyOf = (projectId: string, id: string) => `${projectId}:${id}`.toLowerCase();

/** A report as the batch found it, and as it will write it. */
export interface ReportRecord {
  projectId: string;
  id: string;
  state: ReportState;
  version: number;
  createdBy: string | null;
  updatedBy: string | null;
  /** Fixed by the change that creates the report. */
  scope: string | null;
  /** The row's xid when read (null: a new report): the write checks it is unchanged. */
  xid: string | null;
  /**
   * The hash of the last row of the report's audit chain: as stored when
   * read; in a plan, after the batch's rows.
   */
  chainHead: string | null;
  /** The fields an erasure emptied (as read; a new report has none). */
  erased?: string[];
}

export interface ConflictRecord extends ConflictDraft {
  projectId: string;
  reportId: string;
}

/** What the database holds for a batch, read under its locks (`load.ts`). */
export interface LoadedBatch {
  reports: ReportRecord[];
  /** The last hash of each of the batch's audit chains that has rows. */
  heads: { projectId: string; reportId: string; hash: string }[];
  /** The batch's changes already in the audit log, with their recorded outcome. */
  applied: (Ack & { projectId: string })[];
  /** When each erased field of the batch's reports was last erased. */
  erasures?: ErasedField[];
}

/** What a batch writes (`write.ts`) and answers. */
export interface BatchPlan {
  /** The outcome of each item, in input order. */
  acks: Ack[];
  /** Reports the batch changed. */
  reports: ReportRecord[];
  /** New audit rows in chain order, hashed. */
  audit: (AuditRecord & { hash: string; erasedDigests?: Record<string, string> })[];
  /** The new head of each chain the batch appended to, and whether it had one. */
  chains: ChainHead[];
  conflicts: ConflictRecord[];
}

export interface ChainHead {
  projectId: string;
  reportId: string;
  head: string;
  /** The head the batch read (null: a new chain): the write checks it is unchanged. */
  found: string | null;
  /**
   * Where the write keeps the head (migration 014): in the report's row
   * when the report was stored or the batch starts both report and chain;
   * in audit_chains when no report is stored; in both when the chain's
   * head was in audit_chains and its report is now stored (created by the
   * batch, or stored without a head by code from before 014): that row
   * then stays, at this head.
   */
  at: "report" | "chains" | "both";
}

/** What the database holds for a batch that creates every report it names. */
export const NOTHING_STORED: LoadedBatch = Object.freeze({ reports: [], heads: [], applied: [] });

/**
 * Whether, by its own changes, a batch only creates reports: the first
 * change to each of its reports is an upsert whose device saw none of the
 * fields it writes (its `base` names each as null, as the agent's first
 * write of a report does). A guess, never trusted: such a batch is planned
 * on NOTHING_STORED and written with the checks of any other (write.ts),
 * which write nothing if a report, chain or change exists after all.
 */
export function createsOnly(entries: readonly Entry[]): boolean {
  const seen = new Set<string>();
  for (const { projectId, reportId, change } of entries) {
    if (change?.op !== "upsert") return false;
    const key = keyOf(projectId, reportId);
    if (seen.has(key)) continue;
    seen.add(key);
    const base = change.base;
    if (!base || Object.keys(change.fields).some((field) => base[field] !== null)) return false;
  }
  return true;
}

/** Why a change that reached the consumer can never apply, or undefined when it can. */
function rejectionOf(entry: Entry): { code: string; message: string } | undefined {
  if (!entry.change) return entry.unreadable;
  // Ingest checks this too; repeat it where the write happens.
  if (hlcNode(entry.change.hlc) !== entry.item.deviceId) {
    return { code: "hlc_node_mismatch", message: "the HLC node must be the sending device's id" };
  }
  return undefined;
}

/** An audit row with nothing applied yet: what every outcome starts from. */
function recordOf(
  entry: Entry,
  receivedAt: string,
  appliedAt: string,
  prepared: PreparedChange | undefined,
): AuditRecord {
  return {
    // A row without a change (unreadable) holds no value to salt.
    seed: prepared?.seed ?? null,
    projectId: entry.projectId,
    changeId: entry.changeId,
    reportId: entry.reportId,
    actor: { type: "device", id: entry.item.deviceId },
    op: entry.change?.op ?? null,
    hlc: entry.change?.hlc ?? null,
    outcome: "rejected",
    code: null,
    message: null,
    fieldsApplied: [],
    fieldsSuperseded: [],
    before: {},
    after: {},
    receivedAt,
    appliedAt,
    prevHash: null,
    sig: entry.change?.sig ?? null,
    signedChange: entry.change?.sig
      ? {
          fields: entry.change.op === "upsert" ? entry.change.fields : null,
          base: entry.change.base ?? null,
          scope: entry.change.scope ?? null,
        }
      : null,
  };
}

/**
 * Plans a batch: merges each change, in order, into the state the batch
 * loaded, with per-field last-writer-wins (`core/merge.ts`), and drafts the
 * hash-chained audit rows and conflicts. Pure: it reads nothing and writes
 * nothing, so the same inputs always give the same plan. A change already
 * in the log (or earlier in the batch) is answered with its outcome and
 * planned no further.
 *
 * @param prepared each change's seed and digests (`prepareChange`), made
 *   ahead (while the database was busy) and the same in every attempt at
 *   the batch; made here otherwise.
 */
export function planBatch(
  items: ApplyItem[],
  loaded: LoadedBatch,
  appliedAt: string,
  prepared: ReadonlyMap<Change, PreparedChange> = new Map(),
): BatchPlan {
  const acks = new Map(
    loaded.applied.map((a) => [keyOf(a.projectId, a.changeId), stripProject(a)]),
  );
  // Copies: the plan changes its reports as it merges, never its inputs.
  const reports = new Map(loaded.reports.map((r) => [keyOf(r.projectId, r.id), { ...r }]));
  const heads = new Map<string, string | null>(
    loaded.heads.map((h) => [keyOf(h.projectId, h.reportId), h.hash]),
  );
  const erasedAt = new Map<string, Map<string, number>>();
  for (const { projectId, reportId, field, at } of loaded.erasures ?? []) {
    const key = keyOf(projectId, reportId);
    erasedAt.set(key, (erasedAt.get(key) ?? new Map()).set(field, at));
  }
  const appended = new Map<string, Omit<ChainHead, "at">>();
  const changed = new Set<ReportRecord>();
  const audit: BatchPlan["audit"] = [];
  const conflicts: ConflictRecord[] = [];
  // Messages of one ingest request share their receive time: normalise it once.
  const receivedAt = memo((raw: string) => new Date(raw).toISOString());

  const append = (
    record: AuditRecord,
    afterDigests?: Record<string, string>,
    erase?: ReadonlySet<string>,
  ) => {
    const reportId = record.reportId ?? NO_REPORT;
    const chain = keyOf(record.projectId, reportId);
    record.prevHash = heads.get(chain) ?? null;
    const hash = hashAuditRecord(record, {
      before: digests(record.before, record, "before"),
      after: afterDigests ?? digests(record.after, record, "after"),
    });
    heads.set(chain, hash);
    const head = appended.get(chain);
    if (head) head.head = hash;
    else
      appended.set(chain, {
        projectId: record.projectId,
        reportId,
        head: hash,
        found: record.prevHash,
      });
    // Values erased before the row was written are hashed as they were.
    audit.push({ ...(erase ? eraseInRecord(record, erase) : record), hash });
  };

  const entries = items.map(entryOf);
  for (const entry of entries) {
    const key = keyOf(entry.projectId, entry.changeId);
    if (acks.has(key)) continue; // applied before, or earlier in this batch
    const ready = entry.change && (prepared.get(entry.change) ?? prepareChange(entry.change));
    const record = recordOf(entry, receivedAt(entry.item.receivedAt), appliedAt, ready);
    const reportKey = keyOf(entry.projectId, entry.reportId);
    // Refused or not, its audit row keeps no value erased after it was written.
    const late = entry.change && lateErasedFields(entry.change, erasedAt.get(reportKey));
    const rejection = rejectionOf(entry);
    if (rejection || !entry.change) {
      append({ ...record, ...rejection }, undefined, late);
      acks.set(key, { changeId: entry.changeId, outcome: "rejected", ...rejection });
      continue;
    }
    const existing = reports.get(reportKey);
    // Ingest checked the device's scopes; the report's own is checked here,
    // against the row the write checks is still the one read.
    const misplaced = existing && scopeRejection(entry.change, [], existing.scope);
    if (misplaced) {
      const { code, message } = misplaced;
      append({ ...record, code, message }, undefined, late);
      acks.set(key, { changeId: entry.changeId, outcome: "rejected", code, message });
      continue;
    }
    const report = existing ?? newReport(entry, entry.change);
    reports.set(reportKey, report);
    const merged = mergeInto(report, entry.change, entry.item.deviceId);
    if (merged.changed) changed.add(report);
    const { result } = merged;
    if (late) {
      for (const field of result.fieldsApplied)
        if (late.has(field)) report.state.fields[field] = null;
    }
    append(
      {
        ...record,
        outcome: result.outcome,
        fieldsApplied: result.fieldsApplied,
        fieldsSuperseded: result.fieldsSuperseded,
        before: result.before,
        after: result.after,
      },
      afterDigestsOf(result, ready?.after),
      late,
    );
    for (const conflict of result.conflicts)
      conflicts.push({
        ...(late ? eraseInConflict(conflict, entry.changeId, late) : conflict),
        projectId: entry.projectId,
        reportId: entry.reportId,
      });
    acks.set(key, { changeId: entry.changeId, outcome: result.outcome });
  }
  const written = new Set<string>();
  for (const report of changed) {
    const key = keyOf(report.projectId, report.id);
    report.chainHead = heads.get(key) ?? null;
    written.add(key);
  }
  // Each stored report's head as its row held it (null: a row stored
  // without one, its head still in audit_chains).
  const stored = new Map(loaded.reports.map((r) => [keyOf(r.projectId, r.id), r.chainHead]));
  const at = (key: string, found: string | null): ChainHead["at"] => {
    if (!stored.has(key) && !written.has(key)) return "chains";
    // The head read came from audit_chains: that row moves on with it.
    return found !== null && !stored.get(key) ? "both" : "report";
  };
  return {
    acks: entries.map((e) => acks.get(keyOf(e.projectId, e.changeId))!),
    reports: [...changed],
    audit,
    chains: [...appended].map(([key, chain]) => ({ ...chain, at: at(key, chain.found) })),
    conflicts,
  };
}

function newReport({ projectId, reportId }: Entry, change: Change): ReportRecord {
  return {
    projectId,
    id: reportId,
    state: emptyReportState(),
    version: 0,
    createdBy: null,
    updatedBy: null,
    scope: change.scope ?? null,
    xid: null,
    chainHead: null,
  };
}

/** Merges one change into a report, in place; says whether the report changed. */
function mergeInto(report: ReportRecord, change: Change, deviceId: string) {
  const result = mergeChange(report.state, change);
  const applied = result.outcome !== "superseded";
  if (applied) {
    report.version += 1;
    report.createdBy ??= deviceId;
    report.updatedBy = deviceId;
  }
  const changed = applied || result.state !== report.state;
  report.state = result.state;
  return { result, changed };
}

function stripProject({ projectId: _, ...ack }: Ack & { projectId: string }): Ack {
  return ack;
}

/** A one-entry cache for a function of one string argument. */
function memo(fn: (raw: string) => string): (raw: string) => string {
  let last: { raw: string; value: string } | undefined;
  return (raw) => {
    if (last?.raw !== raw) last = { raw, value: fn(raw) };
    return last.value;
  };
}
