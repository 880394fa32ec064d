import { digests } from "../../../core/audit.ts";
import type { Change } from "../../../core/change.ts";
import type { Ack } from "../../../core/wire.ts";
import type { Db } from "../../adapters/db/db.ts";
import { loadBatch } from "./load.ts";
import { type ApplyItem, entryOf, keyOf, planBatch } from "./plan.ts";
import { writeBatch } from "./write.ts";

export type { ApplyItem };

/**
 * Applies a batch of changes in one transaction of two statements, however
 * large the batch: load (lock and read the batch's reports, chain heads and
 * already-applied changes), plan (merge each change with per-field
 * last-writer-wins, draft the hash-chained audit rows and conflicts; pure),
 * write (reports, audit rows and conflicts, set-based). A change id already
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
  return db.transaction(async (tx) => {
    const loading = loadBatch(tx, { chains, changes: entries });
    // While the database works: the digest of every value the changes carry.
    const changeDigests = new Map<Change, Record<string, string>>();
    for (const { change } of entries) {
      if (change?.op === "upsert") changeDigests.set(change, digests(change.fields));
    }
    const plan = planBatch(items, await loading, new Date(now()).toISOString(), changeDigests);
    await writeBatch(tx, plan);
    return plan.acks;
  });
}
