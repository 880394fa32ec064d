import {
  ChangeMessageVisibilityBatchCommand,
  DeleteMessageBatchCommand,
  type Message,
  ReceiveMessageCommand,
  SendMessageBatchCommand,
  type SQSClient,
} from "@aws-sdk/client-sqs";
import type { DeadLetter } from "../../core/wire-fleet.ts";
import { sendBatchesOf } from "./queue.ts";

/** The dead-letter queue port: what failed, and putting it back. */
export interface DeadLetters {
  /** The project's dead-lettered changes (at most `PEEK_LIMIT` are looked at). */
  list(projectId: string): Promise<DeadLetter[]>;
  /**
   * Moves the project's dead letters (those named, or all) back to the
   * changes queue, where they apply or are recorded `rejected` like any other.
   * Returns those moved.
   */
  redrive(projectId: string, messageIds?: readonly string[]): Promise<DeadLetter[]>;
}

export interface DeadLettersOptions {
  client: SQSClient;
  dlqUrl: string;
  queueUrl: string;
}

/** How many messages one look at the DLQ takes in. */
const PEEK_LIMIT = 100;
/** How long a looked-at message stays hidden if this process dies before handing it back. */
const PEEK_VISIBILITY_SECONDS = 30;

interface Envelope {
  projectId?: unknown;
  deviceId?: unknown;
  change?: { changeId?: unknown; reportId?: unknown };
}

function envelopeOf(message: Message): Envelope | undefined {
  try {
    const body = JSON.parse(message.Body ?? "") as unknown;
    return typeof body === "object" && body !== null ? (body as Envelope) : undefined;
  } catch {
    return undefined;
  }
}

const text = (value: unknown) => (typeof value === "string" ? value : null);

function toDeadLetter(message: Message, envelope: Envelope | undefined): DeadLetter {
  const receiveCount = Number(message.Attributes?.ApproximateReceiveCount ?? 0);
  return {
    messageId: message.MessageId!,
    changeId: text(envelope?.change?.changeId),
    reportId: text(envelope?.change?.reportId),
    deviceId: text(envelope?.deviceId),
    receiveCount,
    sentAt: new Date(Number(message.Attributes?.SentTimestamp ?? 0)).toISOString(),
    reason: envelope
      ? "its batch failed on every receive; the consumer's log has the error for this message id"
      : "not a change message: the consumer cannot read it",
  };
}

/**
 * The DLQ over the SQS API: the same calls on AWS and on the embedded queue.
 * SQS has no way to read a queue without receiving from it, so a look
 * receives up to `PEEK_LIMIT` messages and hands every one it keeps back at
 * once (visibility 0). A FIFO queue hides the rest of a message group while
 * part of it is received, so a report with many dead letters shows its
 * first ten per look; redrive them and look again.
 *
 * Redrive is per project, so it cannot use SQS's message-move task (which
 * moves a whole queue): it sends each chosen message to the changes queue in
 * its group, then deletes it from the DLQ. The send is deduplicated by the
 * dead letter's own id, not the change id, which the changes queue may still
 * remember from the first send; a change applied twice is a no-op anyway.
 */
export function createDeadLetters({ client, dlqUrl, queueUrl }: DeadLettersOptions): DeadLetters {
  /** Receives what the DLQ holds; the caller must hand every message back or delete it. */
  async function receiveAll(): Promise<Message[]> {
    const received: Message[] = [];
    while (received.length < PEEK_LIMIT) {
      const out = await client.send(
        new ReceiveMessageCommand({
          QueueUrl: dlqUrl,
          MaxNumberOfMessages: 10,
          VisibilityTimeout: PEEK_VISIBILITY_SECONDS,
          WaitTimeSeconds: 0,
          MessageSystemAttributeNames: ["All"],
        }),
      );
      if (!out.Messages?.length) break;
      received.push(...out.Messages);
    }
    return received;
  }

  async function handBack(messages: Message[]): Promise<void> {
    for (let i = 0; i < messages.length; i += 10) {
      await client.send(
        new ChangeMessageVisibilityBatchCommand({
          QueueUrl: dlqUrl,
          Entries: messages.slice(i, i + 10).map((m, index) => ({
            Id: String(index),
            ReceiptHandle: m.ReceiptHandle!,
            VisibilityTimeout: 0,
          })),
        }),
      );
    }
  }

  /**
   * Sends up to ten dead letters back to the changes queue in one call, then
   * deletes from the DLQ those the queue took. Returns those moved.
   */
  async function moveBack(messages: Message[]): Promise<Message[]> {
    const sent = await client.send(
      new SendMessageBatchCommand({
        QueueUrl: queueUrl,
        Entries: messages.map((m, index) => ({
          Id: String(index),
          MessageBody: m.Body!,
          MessageGroupId: m.Attributes?.MessageGroupId ?? "dead-letters",
          MessageDeduplicationId: `redrive-${m.MessageId}`,
        })),
      }),
    );
    const moved = (sent.Successful ?? []).map((entry) => messages[Number(entry.Id)]!);
    if (moved.length > 0)
      await client.send(
        new DeleteMessageBatchCommand({
          QueueUrl: dlqUrl,
          Entries: moved.map((m, index) => ({
            Id: String(index),
            ReceiptHandle: m.ReceiptHandle!,
          })),
        }),
      );
    return moved;
  }

  return {
    async list(projectId) {
      const received = await receiveAll();
      await handBack(received);
      return received
        .map((message) => ({ message, envelope: envelopeOf(message) }))
        .filter(({ envelope }) => envelope?.projectId === projectId)
        .map(({ message, envelope }) => toDeadLetter(message, envelope));
    },
    async redrive(projectId, messageIds) {
      const wanted = messageIds ? new Set(messageIds) : undefined;
      const received = await receiveAll();
      const chosen = received.filter(
        (m) => envelopeOf(m)?.projectId === projectId && (!wanted || wanted.has(m.MessageId ?? "")),
      );
      const moved = new Set<Message>();
      try {
        const batches = sendBatchesOf(chosen, (m) => Buffer.byteLength(m.Body ?? ""));
        for (const batch of batches) for (const m of await moveBack(batch)) moved.add(m);
      } finally {
        await handBack(received.filter((m) => !moved.has(m)));
      }
      return [...moved].map((m) => toDeadLetter(m, envelopeOf(m)));
    },
  };
}

/** Where no DLQ is configured (a replay with `npm run invoke` and no cloud running). */
export const NO_DEAD_LETTER_QUEUE: DeadLetters = {
  list: async () => [],
  redrive: async () => [],
};
