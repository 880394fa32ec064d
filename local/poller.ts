import { randomUUID } from "node:crypto";
import {
  DeleteMessageBatchCommand,
  type Message,
  ReceiveMessageCommand,
  type SQSClient,
} from "@aws-sdk/client-sqs";
import type { SQSBatchResponse, SQSEvent, SQSRecord } from "aws-lambda";
import type { Handler } from "../functions/deps.ts";
import { lambdaContext } from "./lambda-context.ts";
import { typeScriptWorker } from "./typescript-worker.ts";

export interface PollerOptions {
  client: SQSClient;
  queueUrl: string;
  queueArn: string;
  region: string;
  handler: Handler<SQSEvent, SQSBatchResponse>;
  /** Concurrent receive loops (Lambda's event source runs several). */
  loops?: number;
  batchSize?: number;
  waitTimeSeconds?: number;
  onError?: (error: unknown) => void;
}

export interface Poller {
  /** Stops receiving, lets in-flight batches finish, then resolves. */
  stop(): Promise<void>;
}

function toRecord(message: Message, queueArn: string, region: string): SQSRecord {
  const a = message.Attributes ?? {};
  return {
    messageId: message.MessageId!,
    receiptHandle: message.ReceiptHandle!,
    body: message.Body ?? "",
    attributes: {
      ApproximateReceiveCount: a.ApproximateReceiveCount ?? "1",
      SentTimestamp: a.SentTimestamp ?? String(Date.now()),
      SenderId: a.SenderId ?? "000000000000",
      ApproximateFirstReceiveTimestamp: a.ApproximateFirstReceiveTimestamp ?? String(Date.now()),
      SequenceNumber: a.SequenceNumber,
      MessageGroupId: a.MessageGroupId,
      MessageDeduplicationId: a.MessageDeduplicationId,
    },
    messageAttributes: {},
    md5OfBody: message.MD5OfBody ?? "",
    eventSource: "aws:sqs",
    eventSourceARN: queueArn,
    awsRegion: region,
  };
}

/**
 * The SQS event source mapping, locally: long-polls the FIFO queue, hands the
 * consumer real `SQSEvent`s of up to 10 records, deletes what succeeded and
 * leaves each `batchItemFailures` entry to come back after the visibility
 * timeout (or to reach the DLQ), as Lambda does with ReportBatchItemFailures.
 */
export function startPoller(options: PollerOptions): Poller {
  const { client, queueUrl, queueArn, region, handler } = options;
  const abort = new AbortController();
  let stopping = false;

  async function loop(): Promise<void> {
    while (!stopping) {
      let messages: Message[] = [];
      try {
        const out = await client.send(
          new ReceiveMessageCommand({
            QueueUrl: queueUrl,
            MaxNumberOfMessages: options.batchSize ?? 10,
            WaitTimeSeconds: options.waitTimeSeconds ?? 20,
            MessageSystemAttributeNames: ["All"],
          }),
          { abortSignal: abort.signal },
        );
        messages = out.Messages ?? [];
      } catch (error) {
        if (stopping) return;
        options.onError?.(error);
        await new Promise((r) => setTimeout(r, 1_000));
        continue;
      }
      if (messages.length === 0) continue;
      const event: SQSEvent = { Records: messages.map((m) => toRecord(m, queueArn, region)) };
      let failed: Set<string>;
      try {
        const response = await handler(event, lambdaContext("consume", randomUUID()));
        failed = new Set((response?.batchItemFailures ?? []).map((f) => f.itemIdentifier));
      } catch (error) {
        // A thrown handler fails the whole batch, as in Lambda.
        options.onError?.(error);
        continue;
      }
      const done = event.Records.filter((r) => !failed.has(r.messageId));
      if (done.length === 0) continue;
      try {
        await client.send(
          new DeleteMessageBatchCommand({
            QueueUrl: queueUrl,
            Entries: done.map((r, i) => ({ Id: String(i), ReceiptHandle: r.receiptHandle })),
          }),
        );
      } catch (error) {
        // Not deleted: the messages come back and apply as no-ops.
        options.onError?.(error);
      }
    }
  }

  const loops = Array.from({ length: options.loops ?? 4 }, () => loop());
  return {
    async stop() {
      stopping = true;
      abort.abort();
      await Promise.all(loops);
    },
  };
}

/** What `startPollerThread` needs: the queue's endpoint instead of a client. */
export type PollerThreadOptions = Omit<PollerOptions, "client" | "handler" | "onError"> & {
  endpoint: string;
};

/** Between the poller's thread and the consumer's. */
export type ThreadMessage =
  | { type: "invoke"; id: number; event: SQSEvent }
  | { type: "invoked"; id: number; response: SQSBatchResponse }
  | { type: "failed"; id: number; error: string }
  | { type: "error"; error: string }
  | { type: "stop" }
  | { type: "stopped" };

/**
 * `startPoller` in a thread of its own, as the event source mapping is a
 * service of its own in AWS: receiving and deleting (SDK calls, signing,
 * parsing) run beside the consumer instead of between its batches, and the
 * consumer is invoked here, in this thread, with each event.
 */
export async function startPollerThread(
  options: PollerThreadOptions & Pick<PollerOptions, "handler" | "onError">,
): Promise<Poller> {
  const { handler, onError, ...data } = options;
  const worker = typeScriptWorker(new URL("./poller-worker.ts", import.meta.url), data);
  const stopped = new Promise<void>((resolve, reject) => {
    worker.on("error", reject);
    worker.on("message", async (message: ThreadMessage) => {
      if (message.type === "error") onError?.(new Error(message.error));
      if (message.type === "stopped") resolve();
      if (message.type !== "invoke") return;
      try {
        const response = await handler(message.event, lambdaContext("consume", randomUUID()));
        worker.postMessage({
          type: "invoked",
          id: message.id,
          response,
        } satisfies ThreadMessage);
      } catch (error) {
        worker.postMessage({
          type: "failed",
          id: message.id,
          error: error instanceof Error ? error.message : String(error),
        } satisfies ThreadMessage);
      }
    });
  });
  // A thread that dies is reported at once, and again by stop().
  stopped.catch((error) => onError?.(error));
  return {
    async stop() {
      worker.postMessage({ type: "stop" } satisfies ThreadMessage);
      await stopped;
      await worker.terminate();
    },
  };
}
