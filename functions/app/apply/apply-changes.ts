import type { Change } from "../../../core/change.ts";
import type { Ack } from "../../../core/wire.ts";
import type { Db, Queryable } from "../../adapters/db/db.ts";
import { loadBatch } from "./load.ts";
import { type ApplyItem, createsOnly, entryOf, keyOf, NOTHING_STORED, planBatch } from "./plan.ts";
import { type PreparedChange, prepareChange } from "./prepare.ts";
import { writeBatch } from "./write.ts";

export type { ApplyItem };

/**
 * Applies a batch of changes in two statements, however large the batch:
 * load (read the batch's reports, chain heads and already-applied changes),
 * plan (merge each change with per-field last-writer-wins, draft the
 * hash-chained audit rows and conflicts; pure), write (reports, audit rows
 * and conflicts, set-based, in one statement). A change id already in the
 * audit log is a no-op that returns its recorded outcome.
 *
 * First without a transaction or locks: the write commits on its own, and
 * only if every report and chain it read is unchanged (write.ts). If
 * anything changed meanwhile (another consumer, an erasure) or the write
 * failed, the batch is planned again from rows locked in one transaction,
 * where nothing can change underneath.
 *
 * A batch that by its own changes only creates reports (`createsOnly`) is
 * first planned on nothing stored and written without a read: one
 * statement. The write's checks stand in for the read: if any of its
 * reports, chains or changes exists after all, it writes nothing and the
 * batch goes the way above.
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
  const entries = items.map(entryOf);
  // Sorted: every consumer locks reports in the same order.
  const chains = [
    ...new Map(
      entries.map((e) => [
        keyOf(e.projectId, e.reportId),
        { projectId: e.projectId, reportId: e.reportId },
      ]),
    ),
  ]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([, chain]) => chain);
  // Each change's seed and the digests of its values, made while the load
  // runs, and kept for every attempt: a row's salts never change.
  const prepared = new Map<Change, PreparedChange>();
  const apply = async (q: Queryable, read: "nothing" | "unlocked" | "locked") => {
    const loading =
      read === "nothing"
        ? Promise.resolve(NOTHING_STORED)
        : loadBatch(q, { chains, changes: entries }, { lock: read === "locked" });
    if (prepared.size === 0) {
      for (const { change } of entries) if (change) prepared.set(change, prepareChange(change));
    }
    const plan = planBatch(items, await loading, new Date(now()).toISOString(), prepared);
    await writeBatch(q, plan);
    return plan.acks;
  };
  if (createsOnly(entries)) {
    try {
      return await apply(db, "nothing");
    } catch {
      // Something was stored after all (a redelivery, a report's new fields): read it.
    }
  }
  try {
    return await apply(db, "unlocked");
  } catch {
    return db.transaction((tx) => apply(tx, "locked"));
  }
}
