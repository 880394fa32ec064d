import { randomUUID } from "node:crypto";
import { mkdir } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import type { ScheduledEvent } from "aws-lambda";
import { type Config, loadConfig } from "../functions/adapters/config.ts";
import type { Db } from "../functions/adapters/db/db.ts";
import { migrate } from "../functions/adapters/db/migrate.ts";
import { createSqsClient } from "../functions/adapters/queue.ts";
import { CONSUMER_CONCURRENCY } from "../functions/deployment.ts";
import { ALL_PORTS, buildDeps, type Deps, openDb } from "../functions/deps.ts";
import { apiFunctions } from "../functions/routes.ts";
import { type RequestInterceptor, startApiGateway } from "./api-gateway.ts";
import { loadEvent } from "./events.ts";
import { type ApiHandler, allFactories, apiFactories } from "./functions.ts";
import { lambdaContext } from "./lambda-context.ts";
import { startPollerThread } from "./poller.ts";
import { ensureExportBucket } from "./s3.ts";
import { type Credentials, seed } from "./seed.ts";
import { ensureQueues, startEmbeddedSqs } from "./sqs.ts";

const SCHEDULED_EVENT = fileURLToPath(
  new URL("../events/eventbridge/scheduled.json", import.meta.url),
);

export interface LocalCloudOptions {
  host?: string;
  port?: number;
  dataDir?: string;
  /** PostgreSQL server; unset: PGlite persisted in `dataDir`. */
  databaseUrl?: string;
  /** An already open database (tests pass an isolated one). */
  db?: Db;
  /** An SQS endpoint to use instead of the embedded one. */
  sqsEndpoint?: string;
  /**
   * Runs the embedded SQS in the caller's thread (default: a thread of its
   * own), where a test's fake clock reaches its 5-minute deduplication window.
   */
  sqsInThisThread?: boolean;
  /** Consumer receive loops (default: as many as the stack runs at once); 0 runs no consumer. */
  consumers?: number;
  visibilityTimeoutSeconds?: number;
  maxClockSkewMs?: number;
  now?: () => number;
  /** Wraps every API request (see `ApiGatewayOptions.around`). */
  around?: RequestInterceptor;
  /** How often the retention schedule runs (default: hourly, as the stack's rule). */
  retentionIntervalMs?: number;
}

export interface LocalCloud {
  url: string;
  config: Config;
  deps: Deps;
  credentials: Credentials;
  /** Pauses or resumes the consumer (the queue keeps filling meanwhile). */
  setConsumerRunning(running: boolean): Promise<void>;
  stop(): Promise<void>;
}

/**
 * The whole cloud in one process: embedded SQS and S3 (fauxqs) on loopback, the
 * database migrated, the API Gateway emulator with the authorizer, and the
 * SQS event source feeding the consumer.
 */
export async function startLocalCloud(options: LocalCloudOptions = {}): Promise<LocalCloud> {
  const host = options.host ?? "127.0.0.1";
  const dataDir = options.dataDir ?? ".local";
  await mkdir(dataDir, { recursive: true });
  const stops: (() => Promise<void>)[] = [];
  const stopAll = async () => {
    for (const stop of stops.reverse()) await stop().catch(() => {});
  };

  try {
    const sqs = options.sqsEndpoint
      ? undefined
      : await startEmbeddedSqs(host, 0, { thread: !options.sqsInThisThread });
    if (sqs) stops.push(sqs.stop);
    const sqsEndpoint = options.sqsEndpoint ?? sqs!.endpoint;
    const region = "us-east-1";
    const client = createSqsClient(region, sqsEndpoint);
    stops.push(async () => client.destroy());
    const queues = await ensureQueues(client, options.visibilityTimeoutSeconds);
    // fauxqs serves S3 on the same port; so does LocalStack.
    const exportBucket = await ensureExportBucket(sqsEndpoint, region);

    const config = loadConfig({
      DATA_DIR: dataDir,
      DATABASE_URL: options.databaseUrl,
      QUEUE_URL: queues.queueUrl,
      DLQ_URL: queues.dlqUrl,
      SQS_ENDPOINT: sqsEndpoint,
      EXPORT_BUCKET: exportBucket,
      S3_ENDPOINT: sqsEndpoint,
      MAX_CLOCK_SKEW_MS: options.maxClockSkewMs?.toString(),
    });
    const db = options.db ?? (await openDb(config));
    if (!options.db) stops.push(() => db.close());
    await migrate(db);

    // Every function runs in this one process, so one set of deps with every
    // port serves them all. `npm run keys:rotate` edits the key file; the
    // ring picks it up within seconds.
    const deps = await buildDeps(config, ALL_PORTS, {
      db,
      now: options.now,
      keysRefreshMs: 2_000,
    });
    stops.push(deps.close);

    const handlers = Object.fromEntries(
      apiFunctions.map((fn) => [fn, apiFactories[fn](deps)]),
    ) as Record<(typeof apiFunctions)[number], ApiHandler>;
    const api = await startApiGateway({
      host,
      port: options.port ?? 3000,
      handlers,
      authorizer: allFactories.authorizer(deps),
      around: options.around,
      now: deps.now,
    });
    stops.push(api.close);

    const consume = allFactories.consume(deps);
    const startConsumer = () =>
      startPollerThread({
        endpoint: sqsEndpoint,
        queueUrl: queues.queueUrl,
        queueArn: queues.queueArn,
        region,
        handler: consume,
        loops: options.consumers ?? CONSUMER_CONCURRENCY,
        onError: (error) => deps.logger.warn("consumer poll failed", { error }),
      });
    let poller =
      (options.consumers ?? CONSUMER_CONCURRENCY) > 0 ? await startConsumer() : undefined;
    // Stopped first on shutdown: the in-flight batch drains before the database closes.
    stops.push(async () => poller?.stop());

    // The stack's hourly retention rule, as a timer (the same handler).
    const retention = allFactories.retention(deps);
    const runRetention = async () => {
      const event = await loadEvent<ScheduledEvent>(SCHEDULED_EVENT);
      await retention(event, lambdaContext("retention", randomUUID()));
    };
    const retentionTimer = setInterval(
      () => void runRetention().catch((error) => deps.logger.warn("retention failed", { error })),
      options.retentionIntervalMs ?? 60 * 60_000,
    );
    retentionTimer.unref();
    stops.push(async () => clearInterval(retentionTimer));

    const credentials = await seed(db, dataDir, api.url);
    return {
      url: api.url,
      config,
      deps,
      credentials,
      async setConsumerRunning(running) {
        if (running && !poller) poller = await startConsumer();
        if (!running && poller) {
          await poller.stop();
          poller = undefined;
        }
      },
      stop: stopAll,
    };
  } catch (error) {
    await stopAll();
    throw error;
  }
}
