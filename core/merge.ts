import type { Change } from "./change.ts";
import { hlcNode } from "./hlc.ts";
import type { JsonObject, JsonValue } from "./json.ts";

/**
 * A report as a map of last-writer-wins registers. `clocks[f]` is the HLC of
 * the write that set `fields[f]`, `writers[f]` its change id. A tombstone
 * (`deletedHlc`) clears every register and wins over any later write.
 */
export interface ReportState {
  fields: JsonObject;
  clocks: Record<string, string>;
  writers: Record<string, string>;
  deletedHlc: string | null;
}

export type Outcome = "applied" | "partial" | "superseded" | "rejected";

export interface ConflictSide {
  changeId: string;
  deviceId: string;
  hlc: string;
  value: JsonValue;
  /** The value was there, and a data-protection erasure removed it (`value` is null). */
  erased?: true;
}

/** Two concurrent writes to one field, and which one last-writer-wins kept. */
export interface ConflictDraft {
  field: string;
  winner: ConflictSide;
  loser: ConflictSide;
}

export interface MergeResult {
  state: ReportState;
  outcome: Exclude<Outcome, "rejected">;
  fieldsApplied: string[];
  fieldsSuperseded: string[];
  /** Values of the applied fields before the change (null where absent). */
  before: JsonObject;
  /** Values of the applied fields after the change (empty for a delete). */
  after: JsonObject;
  conflicts: ConflictDraft[];
}

export const emptyReportState = (): ReportState => ({
  fields: {},
  clocks: {},
  writers: {},
  deletedHlc: null,
});

function outcomeOf(applied: number, superseded: number): MergeResult["outcome"] {
  if (applied === 0) return "superseded";
  return superseded === 0 ? "applied" : "partial";
}

/**
 * Merges one change into a report's state with per-field last-writer-wins.
 * Pure: the input state is not modified. Merging is commutative, associative
 * and idempotent over the resulting state, so the final state depends only on
 * the set of changes, never on their order or on duplicates.
 *
 * @example
 * const { state, outcome } = mergeChange(emptyReportState(), change);
 */
export function mergeChange(current: ReportState, change: Change): MergeResult {
  if (change.op === "delete") return mergeDelete(current, change);

  if (current.deletedHlc !== null) {
    // Deletes win: a write to a deleted report is recorded but changes nothing.
    return {
      state: current,
      outcome: "superseded",
      fieldsApplied: [],
      fieldsSuperseded: Object.keys(change.fields),
      before: {},
      after: {},
      conflicts: [],
    };
  }

  const state: ReportState = {
    fields: { ...current.fields },
    clocks: { ...current.clocks },
    writers: { ...current.writers },
    deletedHlc: null,
  };
  const fieldsApplied: string[] = [];
  const fieldsSuperseded: string[] = [];
  const before: JsonObject = {};
  const after: JsonObject = {};
  const conflicts: ConflictDraft[] = [];
  const deviceId = hlcNode(change.hlc);

  for (const [field, value] of Object.entries(change.fields)) {
    const clock = current.clocks[field];
    const wins = clock === undefined || clock < change.hlc;
    const incoming: ConflictSide = { changeId: change.changeId, deviceId, hlc: change.hlc, value };

    if (clock !== undefined && change.base && field in change.base) {
      // The editor saw `base[field]`; a register written since by another
      // device means the two writes were concurrent.
      const existingDevice = hlcNode(clock);
      if (existingDevice !== deviceId && change.base[field] !== clock && clock !== change.hlc) {
        const existing: ConflictSide = {
          changeId: current.writers[field] ?? "",
          deviceId: existingDevice,
          hlc: clock,
          value: current.fields[field] ?? null,
        };
        conflicts.push(
          wins
            ? { field, winner: incoming, loser: existing }
            : { field, winner: existing, loser: incoming },
        );
      }
    }

    if (wins) {
      before[field] = current.fields[field] ?? null;
      after[field] = value;
      state.fields[field] = value;
      state.clocks[field] = change.hlc;
      state.writers[field] = change.changeId;
      fieldsApplied.push(field);
    } else {
      fieldsSuperseded.push(field);
    }
  }

  return {
    state,
    outcome: outcomeOf(fieldsApplied.length, fieldsSuperseded.length),
    fieldsApplied,
    fieldsSuperseded,
    before,
    after,
    conflicts,
  };
}

function mergeDelete(current: ReportState, change: Change): MergeResult {
  if (current.deletedHlc !== null) {
    // Keep the greatest tombstone stamp so the state is the same in any order.
    const deletedHlc = current.deletedHlc < change.hlc ? change.hlc : current.deletedHlc;
    return {
      state: { ...current, deletedHlc },
      outcome: "superseded",
      fieldsApplied: [],
      fieldsSuperseded: [],
      before: {},
      after: {},
      conflicts: [],
    };
  }
  return {
    state: { fields: {}, clocks: {}, writers: {}, deletedHlc: change.hlc },
    outcome: "applied",
    fieldsApplied: Object.keys(current.fields),
    fieldsSuperseded: [],
    before: { ...current.fields },
    after: {},
    conflicts: [],
  };
}
