import { CreateQueueCommand, GetQueueAttributesCommand, type SQSClient } from "@aws-sdk/client-sqs";
import { buildApp } from "fauxqs";
import { MAX_MESSAGE_BYTES, MAX_RECEIVE_COUNT } from "../functions/deployment.ts";

export const QUEUE_NAME = "changes.fifo";
export const DLQ_NAME = "changes-dlq.fifo";

export interface EmbeddedSqs {
  endpoint: string;
  stop(): Promise<void>;
}

/**
 * fauxqs, an SQS emulator, listening on loopback only. Its queue URLs name
 * `sqs.<region>.localhost:<port>`, a well-formed URL (with an IP address it
 * would write `sqs.<region>.127.0.0.1`, which is not) that clients never
 * dial: they are given the endpoint.
 */
export async function startEmbeddedSqs(host = "127.0.0.1", port = 0): Promise<EmbeddedSqs> {
  const app = buildApp({ logger: false, host: "localhost" });
  await app.listen({ host, port });
  const address = app.server.address();
  const actualPort = typeof address === "object" && address ? address.port : port;
  return { endpoint: `http://${host}:${actualPort}`, stop: () => app.close() };
}

export interface Queues {
  queueUrl: string;
  queueArn: string;
  dlqUrl: string;
}

/**
 * Creates the changes queue and its DLQ through the SQS API (idempotent), as
 * the CDK stack declares them: FIFO, per-message-group throughput, redrive
 * to the DLQ after 5 receives.
 */
export async function ensureQueues(
  client: SQSClient,
  visibilityTimeoutSeconds = 30,
): Promise<Queues> {
  const dlq = await client.send(
    new CreateQueueCommand({
      QueueName: DLQ_NAME,
      Attributes: {
        FifoQueue: "true",
        MessageRetentionPeriod: "1209600",
        MaximumMessageSize: String(MAX_MESSAGE_BYTES),
      },
    }),
  );
  const dlqArn = (
    await client.send(
      new GetQueueAttributesCommand({ QueueUrl: dlq.QueueUrl, AttributeNames: ["QueueArn"] }),
    )
  ).Attributes!.QueueArn!;
  const queue = await client.send(
    new CreateQueueCommand({
      QueueName: QUEUE_NAME,
      Attributes: {
        FifoQueue: "true",
        MaximumMessageSize: String(MAX_MESSAGE_BYTES),
        DeduplicationScope: "messageGroup",
        FifoThroughputLimit: "perMessageGroupId",
        VisibilityTimeout: String(visibilityTimeoutSeconds),
        RedrivePolicy: JSON.stringify({
          deadLetterTargetArn: dlqArn,
          maxReceiveCount: MAX_RECEIVE_COUNT,
        }),
      },
    }),
  );
  const queueArn = (
    await client.send(
      new GetQueueAttributesCommand({ QueueUrl: queue.QueueUrl, AttributeNames: ["QueueArn"] }),
    )
  ).Attributes!.QueueArn!;
  return { queueUrl: queue.QueueUrl!, queueArn, dlqUrl: dlq.QueueUrl! };
}
