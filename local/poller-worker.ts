import { parentPort, workerData } from "node:worker_threads";
import type { SQSBatchResponse, SQSEvent } from "aws-lambda";
import { createSqsClient } from "../functions/adapters/queue.ts";
import { type PollerThreadOptions, startPoller, type ThreadMessage } from "./poller.ts";

/**
 * The event source mapping's own thread (`startPollerThread`): receives and
 * deletes here, and asks the thread that runs the consumer to invoke it.
 */
const options = workerData as PollerThreadOptions;
const client = createSqsClient(options.region, options.endpoint);
const invocations = new Map<number, (outcome: ThreadMessage) => void>();
let invoked = 0;
const port = parentPort!;

const poller = startPoller({
  ...options,
  client,
  handler: async (event: SQSEvent): Promise<SQSBatchResponse> => {
    const id = ++invoked;
    const outcome = await new Promise<ThreadMessage>((resolve) => {
      invocations.set(id, resolve);
      port.postMessage({ type: "invoke", id, event } satisfies ThreadMessage);
    });
    invocations.delete(id);
    if (outcome.type !== "invoked")
      throw new Error(outcome.type === "failed" ? outcome.error : "the consumer did not answer");
    return outcome.response;
  },
  onError: (error) =>
    port.postMessage({ type: "error", error: String(error) } satisfies ThreadMessage),
});

port.on("message", async (message: ThreadMessage) => {
  if (message.type === "invoked" || message.type === "failed")
    invocations.get(message.id)?.(message);
  if (message.type === "stop") {
    await poller.stop();
    client.destroy();
    port.postMessage({ type: "stopped" } satisfies ThreadMessage);
  }
});
