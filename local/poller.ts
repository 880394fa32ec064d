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
