import * as z from "zod";

const DEFAULT_MAX_CLOCK_SKEW_MS = 300_000;

const EnvSchema = z.object({
  DATABASE_URL: z.string().min(1).optional(),
  // RDS Proxy with IAM authentication (AWS, default stack).
  DB_HOST: z.string().min(1).optional(),
  DB_PORT: z.coerce.number().int().positive().default(5432),
  DB_USER: z.string().min(1).optional(),
  DB_NAME: z.string().min(1).default("edge_sync"),
  // Aurora through the RDS Data API (`-c database=aurora-data-api`).
  DB_CLUSTER_ARN: z.string().startsWith("arn:").optional(),
  DB_SECRET_ARN: z.string().startsWith("arn:").optional(),
  DATA_DIR: z.string().min(1).default(".local"),
  QUEUE_URL: z.url({ message: "QUEUE_URL must be the changes.fifo queue URL" }),
  DLQ_URL: z.url().optional(),
  SQS_ENDPOINT: z.url().optional(),
  // Where answers too large for a Lambda response are handed out from (S3).
  EXPORT_BUCKET: z.string().min(3).optional(),
  S3_ENDPOINT: z.url().optional(),
  AWS_REGION: z.string().min(1).default("us-east-1"),
  JWT_ISSUER: z.string().min(1).default("edge-sync"),
  JWT_AUDIENCE: z.string().min(1).default("edge-sync-api"),
  KEYS_FILE: z.string().min(1).optional(),
  KEYS_SECRET_ARN: z.string().startsWith("arn:").optional(),
  MAX_CLOCK_SKEW_MS: z.coerce.number().int().positive().default(DEFAULT_MAX_CLOCK_SKEW_MS),
});

/** Where the database is: first match wins, PGlite in `DATA_DIR` when none is set. */
export type DatabaseConfig =
  | { kind: "url"; url: string }
  | { kind: "rds-iam"; host: string; port: number; user: string; name: string }
  | { kind: "data-api"; clusterArn: string; secretArn: string; name: string }
  | { kind: "pglite" };

/** Everything a function needs to know about its environment, resolved once. */
export interface Config {
  databaseUrl: string | undefined;
  database: DatabaseConfig;
  dataDir: string;
  queueUrl: string;
  dlqUrl: string | undefined;
  sqsEndpoint: string | undefined;
  /** The S3 bucket large exports go to (`functions/adapters/exports.ts`); unset: none. */
  exportBucket: string | undefined;
  s3Endpoint: string | undefined;
  region: string;
  issuer: string;
  audience: string;
  keysFile: string;
  /** On AWS the key file lives in Secrets Manager instead of on disk. */
  keysSecretArn?: string;
  maxClockSkewMs: number;
  tokenTtlSeconds: number;
}

export class ConfigError extends Error {
  override name = "ConfigError";
}

/**
 * Parses the environment once at cold start, failing loudly with every
 * missing or malformed variable named.
 */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const parsed = EnvSchema.safeParse(env);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`);
    throw new ConfigError(`invalid environment: ${problems.join("; ")}`);
  }
  const e = parsed.data;
  return {
    databaseUrl: e.DATABASE_URL,
    database: databaseOf(e),
    dataDir: e.DATA_DIR,
    queueUrl: e.QUEUE_URL,
    dlqUrl: e.DLQ_URL,
    sqsEndpoint: e.SQS_ENDPOINT,
    exportBucket: e.EXPORT_BUCKET,
    s3Endpoint: e.S3_ENDPOINT,
    region: e.AWS_REGION,
    issuer: e.JWT_ISSUER,
    audience: e.JWT_AUDIENCE,
    keysFile: e.KEYS_FILE ?? `${e.DATA_DIR}/keys.json`,
    keysSecretArn: e.KEYS_SECRET_ARN,
    maxClockSkewMs: e.MAX_CLOCK_SKEW_MS,
    tokenTtlSeconds: 900,
  };
}

/** A connection string, or PGlite without one (the local cloud's choice). */
const databaseAt = (url: string | undefined): DatabaseConfig =>
  url ? { kind: "url", url } : { kind: "pglite" };

function databaseOf(e: z.output<typeof EnvSchema>): DatabaseConfig {
  if (e.DATABASE_URL) return databaseAt(e.DATABASE_URL);
  if (e.DB_CLUSTER_ARN) {
    if (!e.DB_SECRET_ARN) throw new ConfigError("DB_CLUSTER_ARN needs DB_SECRET_ARN");
    return {
      kind: "data-api",
      clusterArn: e.DB_CLUSTER_ARN,
      secretArn: e.DB_SECRET_ARN,
      name: e.DB_NAME,
    };
  }
  if (e.DB_HOST) {
    if (!e.DB_USER) throw new ConfigError("DB_HOST needs DB_USER");
    return { kind: "rds-iam", host: e.DB_HOST, port: e.DB_PORT, user: e.DB_USER, name: e.DB_NAME };
  }
  return { kind: "pglite" };
}
