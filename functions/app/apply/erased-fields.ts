import type { AuditRecord } from "../../../core/audit.ts";
import type { Change } from "../../../core/change.ts";
import { hlcWall } from "../../../core/hlc.ts";
import type { ConflictDraft } from "../../../core/merge.ts";
import { erasedRow } from "../erasure.ts";

/** When a report's field was last erased (ms), for each erased field of the batch's reports. */
export interface ErasedField {
  projectId: string;
  reportId: string;
  /** `EVERY_FIELD` for a report retention has erased. */
  field: string;
  at: number;
}

/**
 * The field name (no field can have it: core/limits.ts FIELD_NAME) under
 * which the erasures lookup reports a retention erasure. Retention erases a
 * deleted report for good: a deleted report stays deleted, so whatever is
 * written to it later, at any time, is superseded, and its values are
 * past the project's retention the moment they arrive.
 */
export const EVERY_FIELD = "*";

/**
 * The fields of a change whose values an erasure of its report has already
 * removed: those it names with a value, written (by its clock's wall time)
 * at or before the field's last erasure. Such a change waited in the queue,
 * or the dead-letter queue, while the erasure ran; its device has nulled the
 * same values in its own copy of the change (edge-agent/local-removal.ts,
 * by the same rule), and the cloud applies it as that copy reads. A change
 * written after the erasure is a new write and keeps its values, unless the
 * erasure was retention's (`EVERY_FIELD`): then every value it names is erased.
 */
export function lateErasedFields(
  change: Change,
  erasedAt: ReadonlyMap<string, number> | undefined,
): ReadonlySet<string> | undefined {
  if (!erasedAt || change.op !== "upsert") return undefined;
  const purged = erasedAt.has(EVERY_FIELD);
  const wall = hlcWall(change.hlc);
  const late = Object.keys(change.fields).filter(
    (field) => change.fields[field] !== null && (purged || wall <= (erasedAt.get(field) ?? -1)),
  );
  return late.length > 0 ? new Set(late) : undefined;
}

/**
 * An audit record with `fields` erased as an erasure would leave it, its
 * hash computed before: each value null and its digest kept under
 * "before:", "after:" or "signed:", so the chain and the entry's checks
 * hold (`erasedRow`).
 */
export function eraseInRecord<R extends AuditRecord>(
  record: R,
  fields: ReadonlySet<string>,
): R & { erasedDigests?: Record<string, string> } {
  const erased = erasedRow(
    {
      before: record.before,
      after: record.after,
      signed_change: record.signedChange,
      erased_digests: {},
      seed: record.seed ?? null,
      salts: record.salts ?? {},
    },
    fields,
  );
  if (!erased) return record;
  const { before, after, signedChange, erasedDigests, seed, salts } = erased;
  return {
    ...record,
    before,
    after,
    signedChange: signedChange as R["signedChange"],
    erasedDigests,
    seed,
    salts,
  };
}

/** A conflict the change took part in, with the change's own value erased. */
export function eraseInConflict<C extends ConflictDraft>(
  conflict: C,
  changeId: string,
  fields: ReadonlySet<string>,
): C {
  if (!fields.has(conflict.field)) return conflict;
  const erase = (side: C["winner"]) =>
    side.changeId.toLowerCase() === changeId
      ? { ...side, value: null, erased: true as const }
      : side;
  return { ...conflict, winner: erase(conflict.winner), loser: erase(conflict.loser) };
}
