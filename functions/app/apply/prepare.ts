import { digests, newSeed } from "../../../core/audit.ts";
import type { Change } from "../../../core/change.ts";

/*
 * What a change's audit row is made with ahead of planning (while the
 * database is busy with the load), and kept for every attempt at the batch:
 * a row's salts never change.
 */

/** What a change's audit row is made with before the batch is planned. */
export interface PreparedChange {
  /** The seed of its values' salts (core/audit.ts, `ValueSalts`). */
  seed: string;
  /** The digests of an upsert's values as its row's `after` holds them. */
  after: Record<string, string> | undefined;
}

/** A new seed for the change's row, and its values' digests under it. */
export function prepareChange(change: Change): PreparedChange {
  const seed = newSeed();
  return {
    seed,
    after: change.op === "upsert" ? digests(change.fields, { seed }, "after") : undefined,
  };
}

/**
 * The digests of what a change applied: all of its own when every field
 * applied (computed ahead), else those of the fields that did.
 */
export function afterDigestsOf(
  result: { after: Record<string, unknown>; fieldsSuperseded: string[] },
  ofChange: Record<string, string> | undefined,
): Record<string, string> | undefined {
  if (!ofChange) return undefined;
  if (result.fieldsSuperseded.length === 0) return ofChange;
  return Object.fromEntries(Object.keys(result.after).map((f) => [f, ofChange[f]!]));
}
