import {
  GetQueueAttributesCommand,
  SendMessageBatchCommand,
  type SendMessageBatchRequestEntry,
  SQSClient,
} from "@aws-sdk/client-sqs";
import type { ChangeMessage } from "../../core/change.ts";

/** SQS allows at most 10 entries per SendMessageBatch. */
const SQS_BATCH_LIMIT = 10;

export interface EnqueueFailure {
  changeId: string;
  code: string;
  message: string;
}

export interface EnqueueResult {
  accepted: string[];
  failed: EnqueueFailure[];
}

export interface QueueDepth {
  visible: number;
  inFlight: number;
  dlq: number;
}

/** The changes queue port: SQS FIFO on AWS, fauxqs locally. */
export interface ChangeQueue {
  /** Enqueues changes, reporting per change whether SQS holds it. Never throws. */
  enqueue(messages: ChangeMessage[]): Promise<EnqueueResult>;
  depth(): Promise<QueueDepth>;
}

export interface SqsQueueOptions {
  client: SQSClient;
  queueUrl: string;
  dlqUrl?: string;
}

export function createSqsClient(region: string, endpoint?: string): SQSClient {
  return new SQSClient({
    region,
    ...(endpoint
      ? { endpoint, credentials: { accessKeyId: "local", secretAccessKey: "local" } }
      : {}),
  });
}

function entryOf(message: ChangeMessage, index: number): SendMessageBatchRequestEntry {
  return {
    Id: String(index),
    MessageBody: JSON.stringify(message),
    // One group per report keeps its changes in order and lets reports run in parallel.
    MessageGroupId: `${message.projectId}:${message.change.reportId}`,
    // SQS drops a resend of the same change within its 5-minute window;
    // the audit log's unique change id covers every later resend.
    MessageDeduplicationId: message.change.changeId,
  };
}

export function createSqsQueue({ client, queueUrl, dlqUrl }: SqsQueueOptions): ChangeQueue {
  async function sendChunk(chunk: ChangeMessage[]): Promise<EnqueueResult> {
    const ids = chunk.map((m) => m.change.changeId);
    try {
      const out = await client.send(
        new SendMessageBatchCommand({ QueueUrl: queueUrl, Entries: chunk.map(entryOf) }),
      );
      const failed = (out.Failed ?? []).map((f) => ({
        changeId: ids[Number(f.Id)]!,
        code: "enqueue_failed",
        message: f.SenderFault
          ? `the queue refused the change (${f.Code})`
          : `the queue could not take the change now (${f.Code}); retry`,
      }));
      const failedIds = new Set(failed.map((f) => f.changeId));
      return { accepted: ids.filter((id) => !failedIds.has(id)), failed };
    } catch {
      return {
        accepted: [],
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
      const chunks: ChangeMessage[][] = [];
      for (let i = 0; i < messages.length; i += SQS_BATCH_LIMIT) {
        chunks.push(messages.slice(i, i + SQS_BATCH_LIMIT));
      }
      const results = await Promise.all(chunks.map(sendChunk));
      return {
        accepted: results.flatMap((r) => r.accepted),
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
