import {
  GetQueueAttributesCommand,
  SendMessageBatchCommand,
  type SendMessageBatchRequestEntry,
  SQSClient,
} from "@aws-sdk/client-sqs";
import type { ChangeMessage, Rejection } from "../../core/change.ts";
import type { IngestResult } from "../../core/wire.ts";
import type { QueueDepth } from "../../core/wire-fleet.ts";
import { MAX_MESSAGE_BYTES } from "../deployment.ts";

/** SQS allows at most 10 entries per SendMessageBatch. */
const SQS_BATCH_LIMIT = 10;

export type EnqueueFailure = IngestResult["failed"][number];

export interface EnqueueResult {
  accepted: string[];
  /** Refused for their content: retrying cannot help. */
  rejected: Rejection[];
  /** Not queued this time: retry. */
  failed: EnqueueFailure[];
}

/** The changes queue port: SQS FIFO on AWS, fauxqs locally. */
export interface ChangeQueue {
  /** Enqueues changes, reporting per change whether SQS holds it. Never throws. */
  enqueue(messages: ChangeMessage[]): Promise<EnqueueResult>;
}

/** How full the changes queue and its DLQ are. */
export interface QueueDepthReader {
  depth(): Promise<QueueDepth>;
}

export interface SqsQueueOptions {
  client: SQSClient;
  queueUrl: string;
  dlqUrl?: string;
}

/**
 * An SQS client whose middleware stack is resolved once per command type
 * (`cacheMiddleware`), not on every call: nothing here changes a client's
 * middleware after it is made, and sending, receiving and deleting a
 * message cost the calling process about 30% less CPU with it (bench/README,
 * "e2e"). A call given options of its own (the event source's receives,
 * with their abort signal) is resolved afresh and empties the client's
 * cache, so the event source's deletes are resolved afresh too; caching
 * those as well was measured and gained nothing end to end.
 */
export function createSqsClient(region: string, endpoint?: string): SQSClient {
  return new SQSClient({
    region,
    cacheMiddleware: true,
    ...(endpoint
      ? { endpoint, credentials: { accessKeyId: "local", secretAccessKey: "local" } }
      : {}),
  });
}

/**
 * A message body: the envelope as JSON with every character outside ASCII
 * written as a `\uXXXX` escape. SQS takes only #x9, #xA, #xD, #x20–#xD7FF,
 * #xE000–#xFFFD and #x10000–#x10FFFF, so U+FFFE and U+FFFF (and, on some
 * emulators, any emoji) would be refused; escaped, every string that jsonb
 * can store crosses any SQS, and JSON.parse gives it back unchanged.
 */
export function encodeMessageBody(message: ChangeMessage): string {
  return JSON.stringify(message).replace(
    /[\u007f-\uffff]/g,
    (unit) => `\\u${unit.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
}

interface Encoded {
  message: ChangeMessage;
  body: string;
}

/**
 * Groups messages so that each SendMessageBatch holds at most 10 of them and
 * at most MAX_MESSAGE_BYTES of bodies, SQS's two limits on one call.
 */
export function sendBatchesOf<T>(messages: T[], bodyBytes: (message: T) => number): T[][] {
  const batches: T[][] = [];
  let current: T[] = [];
  let bytes = 0;
  for (const message of messages) {
    const size = bodyBytes(message);
    if (
      current.length === SQS_BATCH_LIMIT ||
      (current.length > 0 && bytes + size > MAX_MESSAGE_BYTES)
    ) {
      batches.push(current);
      current = [];
      bytes = 0;
    }
    current.push(message);
    bytes += size;
  }
  if (current.length) batches.push(current);
  return batches;
}

function entryOf({ message, body }: Encoded, index: number): SendMessageBatchRequestEntry {
  return {
    Id: String(index),
    MessageBody: body,
    // One group per report keeps its changes in order and lets reports run in parallel.
    MessageGroupId: `${message.projectId}:${message.change.reportId}`,
    // SQS drops a resend of the same change within its 5-minute window;
    // the audit log's unique change id covers every later resend.
    MessageDeduplicationId: message.change.changeId,
  };
}

export function createSqsQueue({
  client,
  queueUrl,
  dlqUrl,
}: SqsQueueOptions): ChangeQueue & QueueDepthReader {
  async function sendChunk(chunk: Encoded[]): Promise<EnqueueResult> {
    const ids = chunk.map((e) => e.message.change.changeId);
    try {
      const out = await client.send(
        new SendMessageBatchCommand({ QueueUrl: queueUrl, Entries: chunk.map(entryOf) }),
      );
      const result: EnqueueResult = { accepted: [], rejected: [], failed: [] };
      const refused = new Map((out.Failed ?? []).map((f) => [Number(f.Id), f]));
      ids.forEach((changeId, index) => {
        const f = refused.get(index);
        if (!f) result.accepted.push(changeId);
        // A sender fault is about the message itself: sending it again
        // would be refused again, so the device must not retry it.
        else if (f.SenderFault)
          result.rejected.push({
            changeId,
            code: "queue_refused",
            message: `the queue refused the change (${f.Code}: ${f.Message ?? "no reason given"})`,
          });
        else
          result.failed.push({
            changeId,
            code: "enqueue_failed",
            message: `the queue could not take the change now (${f.Code}); retry`,
          });
      });
      return result;
    } catch {
      return {
        accepted: [],
        rejected: [],
        failed: ids.map((changeId) => ({
          changeId,
          code: "enqueue_failed",
          message: "the queue is unreachable; retry",
        })),
      };
    }
  }

  async function approximate(url: string): Promise<{ visible: number; inFlight: number }> {
    const out = await client.send(
      new GetQueueAttributesCommand({
        QueueUrl: url,
        AttributeNames: ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
      }),
    );
    return {
      visible: Number(out.Attributes?.ApproximateNumberOfMessages ?? 0),
      inFlight: Number(out.Attributes?.ApproximateNumberOfMessagesNotVisible ?? 0),
    };
  }

  return {
    async enqueue(messages) {
      const encoded = messages.map((message) => ({ message, body: encodeMessageBody(message) }));
      const oversized = encoded.filter((e) => e.body.length > MAX_MESSAGE_BYTES);
      const results = await Promise.all(
        // ASCII bodies: one byte per character.
        sendBatchesOf(
          encoded.filter((e) => e.body.length <= MAX_MESSAGE_BYTES),
          (e) => e.body.length,
        ).map(sendChunk),
      );
      return {
        accepted: results.flatMap((r) => r.accepted),
        rejected: [
          ...oversized.map(({ message }) => ({
            changeId: message.change.changeId,
            code: "too_large" as const,
            message: `the change does not fit in one queue message (${MAX_MESSAGE_BYTES} bytes)`,
          })),
          ...results.flatMap((r) => r.rejected),
        ],
        failed: results.flatMap((r) => r.failed),
      };
    },
    async depth() {
      const [main, dlq] = await Promise.all([
        approximate(queueUrl),
        dlqUrl ? approximate(dlqUrl) : Promise.resolve({ visible: 0, inFlight: 0 }),
      ]);
      return { ...main, dlq: dlq.visible + dlq.inFlight };
    },
  };
}
