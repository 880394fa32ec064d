import type { KeyObject } from "node:crypto";
import {
  type AuditRecord,
  hashAuditRecord,
  saltLabel,
  saltOf,
  type ValueSalts,
  valueDigest,
} from "./audit.ts";
import type { Change } from "./change.ts";
import type { JsonObject } from "./json.ts";
import { emptyReportState, mergeChange, type ReportState } from "./merge.ts";
import { verifyChange } from "./signature.ts";

/**
 * The checks of an audit entry that need nothing but the entry, its
 * predecessor's hash and its device's key: what `GET /v1/audit/verify` runs
 * over the database and `edge-sync verify-evidence` over a bundle, so the
 * two can never disagree (DESIGN.md, "Chain of custody").
 */

/** An audit entry as stored: the record, its hash and the digests of erased values. */
export type StoredEntry = AuditRecord & {
  seq: number;
  hash: string | null;
  erasedDigests: Record<string, string>;
};

/** A device's registered key, with when it was registered (ISO 8601). */
export interface DeviceKeyRecord {
  key: KeyObject;
  registeredAt: string;
}

/**
 * The digests a row's hash covers: each value's own (with its salt), or for
 * an erased value the digest recorded when it was erased. Undefined when a
 * value was replaced rather than erased (an erased digest beside a non-null
 * value).
 */
export function digestsOf(
  side: "before" | "after" | "signed",
  values: JsonObject,
  erased: Record<string, string>,
  row: ValueSalts,
): Record<string, string> | undefined {
  const out: Record<string, string> = {};
  for (const [field, value] of Object.entries(values)) {
    const recorded = erased[`${side}:${field}`];
    if (recorded !== undefined && value !== null) return undefined;
    out[field] = recorded ?? valueDigest(value, saltOf(row, saltLabel(side, field)));
  }
  return out;
}

/** How an entry fares: what is wrong with it, if anything, and whether it was signed. */
export interface EntryCheck {
  problem: string | undefined;
  signed: boolean;
}

/**
 * Checks one entry: its chain link, its hash, its values against their
 * digests, and for a device's entry its signature. `expectedPrev` is the
 * hash of the entry before it in its report's chain (null for the first).
 */
export function checkEntry(
  entry: StoredEntry,
  expectedPrev: string | null,
  device: DeviceKeyRecord | undefined,
): EntryCheck {
  const before = digestsOf("before", entry.before, entry.erasedDigests, entry);
  const after = digestsOf("after", entry.after, entry.erasedDigests, entry);
  const signed = entry.sig !== null;
  if (before === undefined || after === undefined) {
    return { problem: "a value was replaced, not erased", signed };
  }
  if (entry.prevHash !== expectedPrev) {
    return {
      problem: "prev_hash does not name the entry before it in its report's chain",
      signed,
    };
  }
  if (entry.hash !== hashAuditRecord(entry, { before, after })) {
    return { problem: "hash does not match the entry's content", signed };
  }
  if (entry.actor.type !== "device") return { problem: undefined, signed };
  return { problem: signatureProblem(entry, device, after), signed };
}

/**
 * What is wrong with a device's entry as to its signature, if anything: a
 * signed entry must carry its device's signature of the change it records,
 * and apply the values the device signed; an entry received after its
 * device registered a key must be signed. Where values the device signed
 * were erased, the signature can no longer be checked, but the digests of
 * what was erased still must match what was applied.
 */
function signatureProblem(
  entry: StoredEntry,
  device: DeviceKeyRecord | undefined,
  afterDigests: Record<string, string>,
): string | undefined {
  if (entry.sig === null) {
    return device && device.registeredAt <= entry.receivedAt
      ? "unsigned, but its device had registered a signing key"
      : undefined;
  }
  if (!device) return "signed, but its device has no registered key";
  const signed = entry.signedChange;
  if (
    !signed ||
    !entry.reportId ||
    !entry.hlc ||
    (entry.op !== "upsert" && entry.op !== "delete")
  ) {
    return "signed, but what was signed is missing";
  }
  const signedDigests = digestsOf("signed", signed.fields ?? {}, entry.erasedDigests, entry);
  if (!signedDigests) return "a signed value was replaced, not erased";
  const erased = Object.keys(entry.erasedDigests).some((k) => k.startsWith("signed:"));
  const content = {
    changeId: entry.changeId,
    reportId: entry.reportId,
    op: entry.op,
    hlc: entry.hlc,
    ...signed,
  };
  if (!erased && !verifyChange(device.key, content, entry.sig)) {
    return "the signature is not its device's signature of this change";
  }
  // An edit applies the values its device signed (a delete applies none).
  for (const field of entry.op === "upsert" ? entry.fieldsApplied : []) {
    if (signedDigests[field] === undefined || signedDigests[field] !== afterDigests[field]) {
      return `field ${field} does not hold the value its device signed`;
    }
  }
  return undefined;
}

/** A report's state as its history produces it. */
export interface ReplayedReport {
  fields: JsonObject;
  clocks: Record<string, string>;
  deleted: boolean;
  version: number;
}

/**
 * Replays a report's history, oldest first, through the same per-field
 * last-writer-wins merge the cloud applies (`core/merge.ts`): each entry
 * that applied anything as the change it records (its applied values; a
 * superseded field's value cannot matter, as it lost). Says where an entry
 * claims an outcome the merge does not give.
 */
export function replayHistory(entries: StoredEntry[]): {
  state: ReplayedReport;
  problem: { seq: number; problem: string } | undefined;
} {
  let state: ReportState = emptyReportState();
  let version = 0;
  for (const entry of entries) {
    // An erasure changes no register: the values it removed are null in
    // every entry before it, so the replay never saw them.
    if (entry.outcome === "rejected" || entry.op === "erase") continue;
    if (!entry.op || !entry.hlc || !entry.reportId) continue;
    const change: Change =
      entry.op === "delete"
        ? { changeId: entry.changeId, reportId: entry.reportId, op: "delete", hlc: entry.hlc }
        : {
            changeId: entry.changeId,
            reportId: entry.reportId,
            op: "upsert",
            hlc: entry.hlc,
            fields: {
              ...Object.fromEntries(entry.fieldsSuperseded.map((f) => [f, null])),
              ...entry.after,
            },
          };
    const merged = mergeChange(state, change);
    const same = (a: string[], b: string[]) => [...a].sort().join() === [...b].sort().join();
    if (
      merged.outcome !== entry.outcome ||
      !same(merged.fieldsApplied, entry.fieldsApplied) ||
      !same(merged.fieldsSuperseded, entry.fieldsSuperseded)
    ) {
      return {
        state: { ...toReplayed(state), version },
        problem: {
          seq: entry.seq,
          problem: `its outcome (${entry.outcome}: ${entry.fieldsApplied.join(", ") || "nothing"} applied) is not what merging it gives (${merged.outcome}: ${merged.fieldsApplied.join(", ") || "nothing"} applied)`,
        },
      };
    }
    state = merged.state;
    if (merged.outcome !== "superseded") version++;
  }
  return { state: { ...toReplayed(state), version }, problem: undefined };
}

function toReplayed(state: ReportState): Omit<ReplayedReport, "version"> {
  return { fields: state.fields, clocks: state.clocks, deleted: state.deletedHlc !== null };
}
