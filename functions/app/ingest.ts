import {
  type ChangeMessage,
  checkChange,
  type Rejection,
  scopeRejection,
} from "../../core/change.ts";
import type { IngestResult } from "../../core/wire.ts";
import type { ChangeQueue } from "../adapters/queue.ts";
import type { WriteRules } from "./device-keys.ts";

export interface IncomingChanges {
  projectId: string;
  deviceId: string;
  /** The raw changes, each with its readable change id. */
  changes: { raw: unknown; changeId: string }[];
  nowMs: number;
  maxClockSkewMs: number;
  /**
   * The device's signing key and scopes and its reports' scopes (its changes
   * must then be signed, and in its scopes). Undefined when they could not
   * be read: the consumer checks them instead.
   */
  rules: WriteRules | undefined;
}

/**
 * Checks each change on its own (limits, shape, signature, HLC, clock skew,
 * scope, repeats in the batch) and puts the good ones on the queue. A bad
 * change is rejected alone; the queue's answer says which of the rest it holds.
 */
export async function acceptChanges(
  queue: ChangeQueue,
  { projectId, deviceId, changes, nowMs, maxClockSkewMs, rules }: IncomingChanges,
): Promise<IngestResult> {
  const receivedAt = new Date(nowMs).toISOString();
  const publicKey = rules?.publicKey;
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
    const misplaced =
      "change" in checked && rules
        ? scopeRejection(
            checked.change,
            rules.scopes,
            // Stored ids are lower case; a change may name its report in capitals.
            rules.reportScopes.get(checked.change.reportId.toLowerCase()),
          )
        : undefined;
    if ("rejection" in checked) rejected.push(checked.rejection);
    else if (misplaced) rejected.push(misplaced);
    else
      messages.push({
        projectId,
        deviceId,
        receivedAt,
        change: checked.change,
        ...(rules === undefined ? { keyUnchecked: true as const } : {}),
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
