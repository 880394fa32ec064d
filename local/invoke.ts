import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { issueToken } from "../functions/adapters/auth/tokens.ts";
import { type Config, loadConfig } from "../functions/adapters/config.ts";
import type { Db } from "../functions/adapters/db/db.ts";
import { migrate } from "../functions/adapters/db/migrate.ts";
import { createSqsClient } from "../functions/adapters/queue.ts";
import { createDevice } from "../functions/app/identity.ts";
import { ALL_PORTS, buildDeps, openDb } from "../functions/deps.ts";
import { loadEvent } from "./events.ts";
import { allFactories } from "./functions.ts";
import { lambdaContext } from "./lambda-context.ts";
import { readRuntime } from "./runtime.ts";
import { EXPORT_BUCKET, ensureExportBucket } from "./s3.ts";
import { type Credentials, credentialsPath, seed } from "./seed.ts";
import { ensureQueues, startEmbeddedSqs } from "./sqs.ts";

const USAGE = `usage: npm run invoke -- <function> <event.json> [--sub DEVICE_ID] [--local-cloud]

functions: ${Object.keys(allFactories).join(", ")}
Runs one handler in-process on a saved event (see events/) and prints its
result. By default against a scratch cloud made for the run and deleted after
it (an embedded database and queue with a demo project and one device), so a
replay never writes into real data. With --local-cloud, against the local
cloud's database, queue and keys instead (DATA_DIR, default .local; and
DATABASE_URL if set), as \`npm start\` uses them.
Placeholders in the event are filled: <project> and <clientId>/<clientSecret>
from the credentials, <sub> with --sub or the demo project's first device,
<token> with a token for <sub>.`;

/** Where a replay runs: its configuration and credentials, and how to put it away. */
interface Target {
  config: Config;
  db: Db;
  credentials: Credentials;
  close(): Promise<void>;
}

/** A cloud of its own in a temporary folder: nothing the replay writes outlives it. */
async function scratchTarget(): Promise<Target> {
  const dataDir = await mkdtemp(join(tmpdir(), "edge-sync-invoke-"));
  const sqs = await startEmbeddedSqs();
  const client = createSqsClient("us-east-1", sqs.endpoint);
  const queues = await ensureQueues(client);
  client.destroy();
  const config = loadConfig({
    DATA_DIR: dataDir,
    QUEUE_URL: queues.queueUrl,
    DLQ_URL: queues.dlqUrl,
    SQS_ENDPOINT: sqs.endpoint,
    EXPORT_BUCKET: await ensureExportBucket(sqs.endpoint),
    S3_ENDPOINT: sqs.endpoint,
  });
  const db = await openDb(config);
  await migrate(db);
  const credentials = await seed(db, dataDir, "http://127.0.0.1:0");
  await createDevice(db, credentials.projects.demo!.id, "invoke");
  return {
    config,
    db,
    credentials,
    async close() {
      await db.close();
      await sqs.stop();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/** The local cloud's own data, as `npm start` left it. */
async function localCloudTarget(): Promise<Target> {
  const dataDir = process.env.DATA_DIR || ".local";
  const databaseUrl = process.env.DATABASE_URL || undefined;
  const runtime = await readRuntime(dataDir);
  if (!databaseUrl && runtime?.alive) {
    throw new Error(
      `The local cloud (pid ${runtime.pid}) has the embedded database open; PGlite is single-process.\nStop it, or run both with DATABASE_URL.`,
    );
  }
  let credentials: Credentials;
  try {
    credentials = JSON.parse(await readFile(credentialsPath(dataDir), "utf8")) as Credentials;
  } catch {
    throw new Error(`No ${credentialsPath(dataDir)}: run \`npm start\` once first.`);
  }
  const endpoint = process.env.SQS_ENDPOINT || runtime?.sqsEndpoint || "http://127.0.0.1:1";
  const config = loadConfig({
    DATA_DIR: dataDir,
    DATABASE_URL: databaseUrl,
    QUEUE_URL: runtime?.queueUrl ?? "http://127.0.0.1:1/000000000000/changes.fifo",
    DLQ_URL: runtime?.dlqUrl,
    SQS_ENDPOINT: endpoint,
    // The local cloud's S3 is its SQS endpoint (fauxqs serves both).
    EXPORT_BUCKET,
    S3_ENDPOINT: endpoint,
  });
  const db = await openDb(config);
  await migrate(db);
  return { config, db, credentials, close: () => db.close() };
}

async function run(): Promise<number> {
  const { positionals, values } = parseArgs({
    args: process.argv.slice(2),
    allowPositionals: true,
    options: {
      sub: { type: "string" },
      "local-cloud": { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
  });
  const [name, eventPath] = positionals;
  if (values.help || !name || !eventPath || !(name in allFactories)) {
    console.error(USAGE);
    return values.help ? 0 : 1;
  }
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= "true";
  const target = values["local-cloud"] ? await localCloudTarget() : await scratchTarget();
  if (!values["local-cloud"])
    console.error(
      `scratch cloud in ${target.config.dataDir} (deleted after this run; --local-cloud for real data)`,
    );
  const { config, db, credentials } = target;
  const deps = await buildDeps(config, ALL_PORTS, { db });
  try {
    const demo = credentials.projects.demo!;
    let sub = values.sub;
    if (!sub) {
      const rows = await db.query<{ id: string }>(
        "select id from devices where project_id = $1 and revoked_at is null order by created_at limit 1",
        [demo.id],
      );
      sub = rows[0]?.id ?? (await createDevice(db, demo.id, "invoke")).id;
    }
    const token = await issueToken(
      deps.keys,
      { ...config, ttlSeconds: 900 },
      { sub, project: demo.id, role: "device" },
    );
    const event = await loadEvent(eventPath, {
      sub,
      project: demo.id,
      token,
      clientId: demo.admin.clientId,
      clientSecret: demo.admin.clientSecret,
    });
    const handler = allFactories[name as keyof typeof allFactories](deps) as (
      e: unknown,
      c: unknown,
    ) => Promise<unknown>;
    const result = await handler(event, lambdaContext(name, crypto.randomUUID()));
    console.log(JSON.stringify(result, null, 2));
    return 0;
  } finally {
    await deps.close();
    await target.close();
  }
}

process.exitCode = await run().catch((error) => {
  console.error(error instanceof Error ? error.message : error);
  return 1;
});
