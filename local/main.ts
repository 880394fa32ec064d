import * as z from "zod";
import { startLocalCloud } from "./cloud.ts";
import { readRuntime, removeRuntime, writeRuntime } from "./runtime.ts";

const EnvSchema = z.object({
  HOST: z.string().default("127.0.0.1"),
  PORT: z.coerce.number().int().min(0).max(65535).default(3000),
  DATA_DIR: z.string().min(1).default(".local"),
  DATABASE_URL: z
    .string()
    .optional()
    .transform((v) => v || undefined),
  SQS_ENDPOINT: z.url().optional(),
});

const env = EnvSchema.safeParse(process.env);
if (!env.success) {
  console.error(
    `edge-sync: ${env.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ")}`,
  );
  process.exit(1);
}
process.env.POWERTOOLS_LOG_LEVEL ??= "WARN";
// Lambda runs Node.js 22; the SDK's notice about older local Node versions is noise here.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= "true";

const running = await readRuntime(env.data.DATA_DIR);
if (running?.alive && running.pid !== process.pid) {
  console.error(
    `edge-sync: a local cloud (pid ${running.pid}) already uses ${env.data.DATA_DIR} at ${running.apiUrl}`,
  );
  process.exit(1);
}

const cloud = await startLocalCloud({
  host: env.data.HOST,
  port: env.data.PORT,
  dataDir: env.data.DATA_DIR,
  databaseUrl: env.data.DATABASE_URL,
  sqsEndpoint: env.data.SQS_ENDPOINT,
});
await writeRuntime(cloud.config.dataDir, {
  pid: process.pid,
  apiUrl: cloud.url,
  sqsEndpoint: cloud.config.sqsEndpoint!,
  queueUrl: cloud.config.queueUrl,
  dlqUrl: cloud.config.dlqUrl!,
});
console.log(`edge-sync local cloud ready at ${cloud.url}`);
console.log(
  `  database: ${cloud.deps.db.kind}${cloud.config.databaseUrl ? "" : ` in ${cloud.config.dataDir}/pgdata`}`,
);
console.log(`  queue:    ${cloud.config.queueUrl}`);
console.log(`  credentials: ${cloud.config.dataDir}/credentials.json`);

let stopping = false;
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.on(signal, () => {
    if (stopping) process.exit(1);
    stopping = true;
    console.log("stopping: draining the in-flight batch…");
    cloud
      .stop()
      .then(() => removeRuntime(cloud.config.dataDir))
      .then(
        () => process.exit(0),
        (error) => {
          console.error(error);
          process.exit(1);
        },
      );
  });
}
