import type { KeyObject } from "node:crypto";
import { type ChangeMessage, checkChange, type Rejection } from "../../core/change.ts";
import type { IngestResult } from "../../core/wire.ts";
import type { ChangeQueue } from "../adapters/queue.ts";

export interface IncomingChanges {
  projectId: string;
  deviceId: string;
  /** The raw changes, each with its readable change id. */
  changes: { raw: unknown; changeId: string }[];
  nowMs: number;
  maxClockSkewMs: number;
  /**
   * The device's registered signing key: its changes must then be signed.
   * Undefined when it could not be read: the consumer checks them instead.
   */
  publicKey: KeyObject | null | undefined;
}

/**
 * Checks each change on its own (limits, shape, signature, HLC, clock skew,
 * repeats in the batch) and puts the good ones on the queue. A bad change is rejected
 * alone; the queue's answer says which of the rest it holds.
 */
export async function acceptChanges(
  queue: ChangeQueue,
  { projectId, deviceId, changes, nowMs, maxClockSkewMs, publicKey }: IncomingChanges,
): Promise<IngestResult> {
  const receivedAt = new Date(nowMs).toISOString();
  const context = { deviceId, serverNowMs: nowMs, maxClockSkewMs, publicKey };
  const seen = new Set<string>();
  const rejected: Rejection[] = [];
  const messages: ChangeMessage[] = [];
  for (const { raw, changeId } of changes) {
    if (seen.has(changeId)) {
      rejected.push({
        changeId,
        code: "duplicate_in_batch",
        message: "this changeId appears earlier in the batch",
      });
      continue;
    }
    seen.add(changeId);
    const checked = checkChange(raw, changeId, context);
    if ("rejection" in checked) rejected.push(checked.rejection);
    else
      messages.push({
        projectId,
        deviceId,
        receivedAt,
        change: checked.change,
        ...(publicKey === undefined ? { keyUnchecked: true as const } : {}),
      });
  }
  const queued = messages.length
    ? await queue.enqueue(messages)
    : { accepted: [], rejected: [], failed: [] };
  return {
    accepted: queued.accepted,
    rejected: [...rejected, ...queued.rejected],
    failed: queued.failed,
  };
}
