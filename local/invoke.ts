import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { keyRingFrom, loadOrCreateKeyFile } from "../functions/lib/auth/keys.ts";
import { issueToken } from "../functions/lib/auth/tokens.ts";
import { type Config, databaseAt } from "../functions/lib/config.ts";
import { migrate } from "../functions/lib/db/migrate.ts";
import { type Deps, openDb, queuePorts } from "../functions/lib/deps.ts";
import { createDevice } from "../functions/lib/identity.ts";
import { createLogger } from "../functions/lib/logger.ts";
import { createSqsClient } from "../functions/lib/queue.ts";
import { loadEvent } from "./events.ts";
import { allFactories } from "./functions.ts";
import { lambdaContext } from "./lambda-context.ts";
import { readRuntime } from "./runtime.ts";
import { type Credentials, credentialsPath } from "./seed.ts";

const USAGE = `usage: npm run invoke -- <function> <event.json> [--sub DEVICE_ID]

functions: ${Object.keys(allFactories).join(", ")}
Runs one handler in-process on a saved event (see events/), against the local
cloud's database, queue and keys (DATA_DIR, default .local). Placeholders in the
event are filled: <project> and <clientId>/<clientSecret> from credentials.json,
<sub> with --sub or the first device of the demo project, <token> with a token
for <sub>.`;

async function run(): Promise<number> {
  const { positionals, values } = parseArgs({
    args: process.argv.slice(2),
    allowPositionals: true,
    options: { sub: { type: "string" }, help: { type: "boolean", short: "h" } },
  });
  const [name, eventPath] = positionals;
  if (values.help || !name || !eventPath || !(name in allFactories)) {
    console.error(USAGE);
    return values.help ? 0 : 1;
  }
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= "true";
  const dataDir = process.env.DATA_DIR || ".local";
  const databaseUrl = process.env.DATABASE_URL || undefined;
  const runtime = await readRuntime(dataDir);
  if (!databaseUrl && runtime?.alive) {
    console.error(
      `The local cloud (pid ${runtime.pid}) has the embedded database open; PGlite is single-process.\nStop it, or run both with DATABASE_URL.`,
    );
    return 1;
  }
  let credentials: Credentials;
  try {
    credentials = JSON.parse(await readFile(credentialsPath(dataDir), "utf8")) as Credentials;
  } catch {
    console.error(`No ${credentialsPath(dataDir)}: run \`npm start\` once first.`);
    return 1;
  }
  const sqsEndpoint = process.env.SQS_ENDPOINT || runtime?.sqsEndpoint;
  const config: Config = {
    databaseUrl,
    database: databaseAt(databaseUrl),
    dataDir,
    queueUrl: runtime?.queueUrl ?? "http://127.0.0.1:1/000000000000/changes.fifo",
    dlqUrl: runtime?.dlqUrl,
    sqsEndpoint: sqsEndpoint ?? "http://127.0.0.1:1",
    region: "us-east-1",
    issuer: "edge-sync",
    audience: "edge-sync-api",
    keysFile: join(dataDir, "keys.json"),
    maxClockSkewMs: 300_000,
    tokenTtlSeconds: 900,
  };
  const db = await openDb(config);
  try {
    await migrate(db);
    const client = createSqsClient(config.region, config.sqsEndpoint);
    const deps: Deps = {
      config,
      db,
      ...queuePorts(client, config),
      keys: await keyRingFrom(await loadOrCreateKeyFile(config.keysFile)),
      logger: createLogger(),
      now: Date.now,
    };
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
    client.destroy();
    return 0;
  } finally {
    await db.close();
  }
}

process.exitCode = await run().catch((error) => {
  console.error(error instanceof Error ? error.message : error);
  return 1;
});
