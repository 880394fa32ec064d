import { Worker } from "node:worker_threads";
import { CreateQueueCommand, GetQueueAttributesCommand, type SQSClient } from "@aws-sdk/client-sqs";
import { buildApp } from "fauxqs";
import { MAX_MESSAGE_BYTES, MAX_RECEIVE_COUNT } from "../functions/deployment.ts";

export const QUEUE_NAME = "changes.fifo";
export const DLQ_NAME = "changes-dlq.fifo";

export interface EmbeddedSqs {
  endpoint: string;
  stop(): Promise<void>;
}

// The emulator's own thread: started with `eval`, so it needs no TypeScript
// loader (vitest, tsx and plain node all run it the same way).
const WORKER = `
const { parentPort, workerData } = require("node:worker_threads");
import(workerData.fauxqs).then(async ({ buildApp }) => {
  const app = buildApp({ logger: false, host: "localhost" });
  await app.listen({ host: workerData.host, port: workerData.port });
  parentPort.postMessage({ port: app.server.address().port });
  parentPort.once("message", () => app.close().then(() => process.exit(0)));
}).catch((error) => parentPort.postMessage({ error: String(error && error.stack || error) }));
`;

/**
 * fauxqs, an SQS emulator, listening on loopback only, in a thread of its
 * own: like the real service it answers without waiting for the functions
 * that call it, and its work runs beside theirs instead of between them
 * (the local cloud's functions share one event loop). Its queue URLs name
 * `sqs.<region>.localhost:<port>`, a well-formed URL (with an IP address it
 * would write `sqs.<region>.127.0.0.1`, which is not) that clients never
 * dial: they are given the endpoint.
 */
export async function startEmbeddedSqs(
  host = "127.0.0.1",
  port = 0,
  { thread = true } = {},
): Promise<EmbeddedSqs> {
  if (!thread) {
    // In this thread, where a test's fake clock reaches its deduplication window.
    const app = buildApp({ logger: false, host: "localhost" });
    await app.listen({ host, port });
    const address = app.server.address();
    const actualPort = typeof address === "object" && address ? address.port : port;
    return { endpoint: `http://${host}:${actualPort}`, stop: () => app.close() };
  }
  const worker = new Worker(WORKER, {
    eval: true,
    workerData: { fauxqs: import.meta.resolve("fauxqs"), host, port },
  });
  const started = await new Promise<{ port?: number; error?: string }>((resolve, reject) => {
    worker.once("message", resolve);
    worker.once("error", reject);
    worker.once("exit", (code) => reject(new Error(`the SQS emulator exited (${code})`)));
  });
  // From here on an error in the emulator is not this promise's to swallow.
  worker.removeAllListeners("error").removeAllListeners("exit");
  if (started.error) {
    await worker.terminate();
    throw new Error(`the SQS emulator did not start: ${started.error}`);
  }
  const exited = new Promise<void>((resolve) => worker.once("exit", () => resolve()));
  return {
    endpoint: `http://${host}:${started.port}`,
    async stop() {
      worker.postMessage("stop");
      await exited;
    },
  };
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
