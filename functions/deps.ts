import { join } from "node:path";
import type { Logger } from "@aws-lambda-powertools/logger";
import type { Context } from "aws-lambda";
import {
  type KeyFile,
  type KeyRing,
  keyRingFrom,
  loadKeyFileFromSecret,
  loadOrCreateKeyFile,
} from "./adapters/auth/keys.ts";
import { type Config, loadConfig } from "./adapters/config.ts";
import type { Db } from "./adapters/db/db.ts";
import { createPostgresDb } from "./adapters/db/postgres.ts";
import {
  createDeadLetters,
  type DeadLetters,
  NO_DEAD_LETTER_QUEUE,
} from "./adapters/dead-letters.ts";
import { createS3Exports, type Exports, NO_EXPORTS } from "./adapters/exports.ts";
import { createLogger } from "./adapters/logger.ts";
import {
  type ChangeQueue,
  createSqsClient,
  createSqsQueue,
  type QueueDepthReader,
} from "./adapters/queue.ts";
import { FUNCTION_PORTS, type FunctionName, type Port, type PortsOf } from "./deployment.ts";

/** Every port a function can be given (`FUNCTION_PORTS` says which it is). */
export interface Ports {
  db: Db;
  /** Sending changes to the FIFO queue. */
  queue: ChangeQueue;
  /** How many messages the queue and its DLQ hold. */
  queueDepth: QueueDepthReader;
  deadLetters: DeadLetters;
  keys: KeyRing;
  /** Handing out answers too large for a response (S3). */
  exports: Exports;
}

/** What every function has, whatever its ports. */
export interface Runtime {
  config: Config;
  logger: Logger;
  /** Wall clock in epoch milliseconds. */
  now: () => number;
}

/** A function's dependencies: the runtime and the ports it declared. */
export type Deps<P extends Port = Port> = Runtime & Pick<Ports, P>;
/** The dependencies of one function, by its name in `FUNCTION_PORTS`. */
export type DepsOf<F extends FunctionName> = Deps<PortsOf<F>>;

export const ALL_PORTS: readonly Port[] = [
  "db",
  "queue",
  "queueDepth",
  "deadLetters",
  "keys",
  "exports",
];

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
      const { createDataApiDb } = await import("./adapters/db/data-api.ts");
      return createDataApiDb({
        // Each statement is one call with no options of its own: the
        // middleware stack is resolved once per command type, as for SQS
        // (adapters/queue.ts).
        client: new RDSDataClient({ region: config.region, cacheMiddleware: true }),
        resourceArn: database.clusterArn,
        secretArn: database.secretArn,
        database: database.name,
      });
    }
    case "pglite": {
      // Loaded only when used: Lambda bundles leave PGlite out.
      const { createPgliteDb } = await import("./adapters/db/pglite.ts");
      return createPgliteDb(join(config.dataDir, "pgdata"));
    }
  }
}

/** Where the key file comes from: Secrets Manager on AWS, a file locally. */
export function keyFileSource(config: Config): () => Promise<KeyFile> {
  return config.keysSecretArn
    ? () => loadKeyFileFromSecret(config.keysSecretArn!, config.region)
    : () => loadOrCreateKeyFile(config.keysFile);
}

export interface BuildOptions {
  /** An open database to use instead of the one the configuration names. */
  db?: Db;
  /** A key ring to use instead of loading the key file. */
  keys?: KeyRing;
  now?: () => number;
  /**
   * Reload the key ring this often, so a rotation reaches running functions
   * and a replaced key stops verifying once its grace is over.
   */
  keysRefreshMs?: number;
}

/** Deps with what it takes to put them away. */
export type Built<P extends Port> = Deps<P> & { close(): Promise<void> };

/**
 * Builds the runtime and the ports named, and nothing else: the one way
 * dependencies are made, by a Lambda cold start, the local cloud, `npm run
 * invoke` and the tests. A function without `keys` never loads the key file.
 */
export async function buildDeps<P extends Port>(
  config: Config,
  ports: readonly P[],
  options: BuildOptions = {},
): Promise<Built<P>> {
  const wants = (port: Port) => (ports as readonly Port[]).includes(port);
  const closers: (() => Promise<void>)[] = [];
  const deps: Partial<Ports> & Runtime = {
    config,
    logger: createLogger(),
    now: options.now ?? (() => Date.now()),
  };
  if (wants("db")) {
    deps.db = options.db ?? (await openDb(config));
    if (!options.db) closers.push(() => deps.db!.close());
  }
  if (wants("queue") || wants("queueDepth") || wants("deadLetters")) {
    const client = createSqsClient(config.region, config.sqsEndpoint);
    closers.push(async () => client.destroy());
    const sqs = createSqsQueue({ client, queueUrl: config.queueUrl, dlqUrl: config.dlqUrl });
    if (wants("queue")) deps.queue = sqs;
    if (wants("queueDepth")) deps.queueDepth = sqs;
    if (wants("deadLetters"))
      deps.deadLetters = config.dlqUrl
        ? createDeadLetters({ client, queueUrl: config.queueUrl, dlqUrl: config.dlqUrl })
        : NO_DEAD_LETTER_QUEUE;
  }
  if (wants("exports")) {
    if (config.exportBucket) {
      const exports = createS3Exports({
        region: config.region,
        bucket: config.exportBucket,
        endpoint: config.s3Endpoint,
      });
      closers.push(async () => exports.close());
      deps.exports = exports;
    } else deps.exports = NO_EXPORTS;
  }
  if (wants("keys")) {
    const load = keyFileSource(config);
    deps.keys = options.keys ?? (await keyRingFrom(await load(), deps.now()));
    if (options.keysRefreshMs && !options.keys) {
      const timer = setInterval(() => {
        load()
          .then((file) => keyRingFrom(file, deps.now()))
          .then((keys) => {
            deps.keys = keys;
          })
          .catch((error) =>
            deps.logger.warn("key reload failed; keeping the current keys", { error }),
          );
      }, options.keysRefreshMs);
      // The timer never holds a process open.
      timer.unref();
      closers.push(async () => clearInterval(timer));
    }
  }
  return Object.assign(deps as Deps<P>, {
    async close() {
      for (const close of closers.reverse()) await close().catch(() => {});
    },
  });
}

export type Handler<E, R> = (event: E, context: Context) => Promise<R>;

/**
 * Wraps a handler factory into a Lambda handler: the function's declared
 * ports are built once per cold start, on the first invocation, and reused
 * after; a cold start that fails is tried again on the next invocation.
 *
 * @example
 * export const create = (deps: DepsOf<"me">) => middy().handler(...);
 * export const handler = lambdaHandler("me", create);
 */
export function lambdaHandler<F extends FunctionName, E, R>(
  name: F,
  create: (deps: DepsOf<F>) => Handler<E, R>,
): Handler<E, R> {
  let built: Promise<Handler<E, R>> | undefined;
  return async (event, context) => {
    built ??= buildDeps(loadConfig(), FUNCTION_PORTS[name], { keysRefreshMs: 5 * 60_000 })
      .then((deps) => create(deps as DepsOf<F>))
      .catch((error) => {
        built = undefined;
        throw error;
      });
    return (await built)(event, context);
  };
}
