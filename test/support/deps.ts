import { keyRingFrom, newStoredKey } from "../../functions/adapters/auth/keys.ts";
import { type Config, loadConfig } from "../../functions/adapters/config.ts";
import type { Db } from "../../functions/adapters/db/db.ts";
import { createSqsClient } from "../../functions/adapters/queue.ts";
import { ALL_PORTS, buildDeps } from "../../functions/deps.ts";
import { ensureQueues, startEmbeddedSqs } from "../../local/sqs.ts";

/**
 * A database that is down: every use throws. Handlers that must keep working
 * without one (ingest puts changes on the queue whatever the database does)
 * are tested against it.
 */
export const downDb: Db = new Proxy({} as Db, {
  get(_, property) {
    if (property === "then") return undefined;
    throw new Error(`the database is down (${String(property)})`);
  },
});

/**
 * Real ports for handler tests: an embedded SQS with the real queues, a fresh
 * ES256 key ring, and the database given (or none).
 */
export async function handlerDeps(db: Db = downDb, overrides: Partial<Config> = {}) {
  const sqs = await startEmbeddedSqs();
  const client = createSqsClient("us-east-1", sqs.endpoint);
  const queues = await ensureQueues(client, 1);
  const config: Config = {
    ...loadConfig({
      QUEUE_URL: queues.queueUrl,
      DLQ_URL: queues.dlqUrl,
      SQS_ENDPOINT: sqs.endpoint,
      DATA_DIR: "unused",
    }),
    ...overrides,
  };
  const deps = await buildDeps(config, ALL_PORTS, {
    db,
    keys: await keyRingFrom({ keys: [await newStoredKey()] }),
  });
  return {
    deps,
    client,
    queues,
    async stop() {
      await deps.close();
      client.destroy();
      await sqs.stop();
    },
  };
}
