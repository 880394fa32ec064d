import { join } from "node:path";
import type { Logger } from "@aws-lambda-powertools/logger";
import type { SQSClient } from "@aws-sdk/client-sqs";
import type { Context } from "aws-lambda";
import {
  type KeyFile,
  type KeyRing,
  keyRingFrom,
  loadKeyFileFromSecret,
  loadOrCreateKeyFile,
} from "./auth/keys.ts";
import { type Config, loadConfig } from "./config.ts";
import type { Db } from "./db/db.ts";
import { createPostgresDb } from "./db/postgres.ts";
import { createDeadLetters, type DeadLetters, NO_DEAD_LETTER_QUEUE } from "./dead-letters.ts";
import { createLogger } from "./logger.ts";
import { type ChangeQueue, createSqsClient, createSqsQueue } from "./queue.ts";

/** The ports every handler is built from; tests and the local cloud pass their own. */
export interface Deps {
  config: Config;
  db: Db;
  queue: ChangeQueue;
  deadLetters: DeadLetters;
  keys: KeyRing;
  logger: Logger;
  /** Wall clock in epoch milliseconds. */
  now: () => number;
}

/**
 * Opens the database the configuration names: a URL, RDS Proxy with IAM
 * auth, Aurora's Data API, else PGlite in `DATA_DIR`.
 */
export async function openDb(config: Config): Promise<Db> {
  const database = config.database;
  switch (database.kind) {
    case "url":
      return createPostgresDb({ connectionString: database.url });
    case "rds-iam": {
      const { Signer } = await import("@aws-sdk/rds-signer");
      const signer = new Signer({
        hostname: database.host,
        port: database.port,
        username: database.user,
        region: config.region,
      });
      // A Lambda instance serves one request at a time: two connections suffice.
      return createPostgresDb({
        host: database.host,
        port: database.port,
        user: database.user,
        database: database.name,
        password: () => signer.getAuthToken(),
        ssl: true,
        max: 2,
      });
    }
    case "data-api": {
      const { RDSDataClient } = await import("@aws-sdk/client-rds-data");
      const { createDataApiDb } = await import("./db/data-api.ts");
      return createDataApiDb({
        client: new RDSDataClient({ region: config.region }),
        resourceArn: database.clusterArn,
        secretArn: database.secretArn,
        database: database.name,
      });
    }
    case "pglite": {
      // Loaded only when used: Lambda bundles leave PGlite out.
      const { createPgliteDb } = await import("./db/pglite.ts");
      return createPgliteDb(join(config.dataDir, "pgdata"));
    }
  }
}

/** The changes queue and its DLQ, over one SQS client. */
export function queuePorts(
  client: SQSClient,
  { queueUrl, dlqUrl }: Pick<Config, "queueUrl" | "dlqUrl">,
): Pick<Deps, "queue" | "deadLetters"> {
  return {
    queue: createSqsQueue({ client, queueUrl, dlqUrl }),
    deadLetters: dlqUrl ? createDeadLetters({ client, queueUrl, dlqUrl }) : NO_DEAD_LETTER_QUEUE,
  };
}

/** Where the key file comes from: Secrets Manager on AWS, a file locally. */
export function keyFileSource(config: Config): () => Promise<KeyFile> {
  return config.keysSecretArn
    ? () => loadKeyFileFromSecret(config.keysSecretArn!, config.region)
    : () => loadOrCreateKeyFile(config.keysFile);
}

/**
 * Reloads the key ring every `everyMs`, so a rotation reaches running
 * functions and a replaced key stops verifying once its grace is over.
 * Handlers read `deps.keys` on every call. The timer never holds a process open.
 */
export function refreshKeys(deps: Deps, load: () => Promise<KeyFile>, everyMs: number): () => void {
  const timer = setInterval(() => {
    load()
      .then((file) => keyRingFrom(file, deps.now()))
      .then((keys) => {
        deps.keys = keys;
      })
      .catch((error) => deps.logger.warn("key reload failed; keeping the current keys", { error }));
  }, everyMs);
  timer.unref();
  return () => clearInterval(timer);
}

/** Builds the ports from the environment, as a Lambda cold start does. */
export async function depsFromEnv(env: NodeJS.ProcessEnv = process.env): Promise<Deps> {
  const config = loadConfig(env);
  const client = createSqsClient(config.region, config.sqsEndpoint);
  const loadKeys = keyFileSource(config);
  const deps: Deps = {
    config,
    db: await openDb(config),
    ...queuePorts(client, config),
    keys: await keyRingFrom(await loadKeys()),
    logger: createLogger(),
    now: Date.now,
  };
  refreshKeys(deps, loadKeys, 5 * 60_000);
  return deps;
}

export type Handler<E, R> = (event: E, context: Context) => Promise<R>;

/**
 * Wraps a handler factory into a Lambda handler: the ports are built once per
 * cold start, on the first invocation, and reused after.
 *
 * @example
 * export const create = (deps: Deps) => middy().handler(...);
 * export const handler = lambdaHandler(create);
 */
export function lambdaHandler<E, R>(create: (deps: Deps) => Handler<E, R>): Handler<E, R> {
  let built: Promise<Handler<E, R>> | undefined;
  return async (event, context) => {
    built ??= depsFromEnv().then(create);
    return (await built)(event, context);
  };
}
