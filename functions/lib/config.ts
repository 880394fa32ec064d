import { z } from "zod";

const DEFAULT_MAX_CLOCK_SKEW_MS = 300_000;

const EnvSchema = z.object({
  DATABASE_URL: z.string().min(1).optional(),
  DATA_DIR: z.string().min(1).default(".local"),
  QUEUE_URL: z.url({ message: "QUEUE_URL must be the changes.fifo queue URL" }),
  DLQ_URL: z.url().optional(),
  SQS_ENDPOINT: z.url().optional(),
  AWS_REGION: z.string().min(1).default("us-east-1"),
  JWT_ISSUER: z.string().min(1).default("edge-sync"),
  JWT_AUDIENCE: z.string().min(1).default("edge-sync-api"),
  KEYS_FILE: z.string().min(1).optional(),
  KEYS_SECRET_ARN: z.string().startsWith("arn:").optional(),
  MAX_CLOCK_SKEW_MS: z.coerce.number().int().positive().default(DEFAULT_MAX_CLOCK_SKEW_MS),
});

/** Everything a function needs to know about its environment, resolved once. */
export interface Config {
  databaseUrl: string | undefined;
  dataDir: string;
  queueUrl: string;
  dlqUrl: string | undefined;
  sqsEndpoint: string | undefined;
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
    dataDir: e.DATA_DIR,
    queueUrl: e.QUEUE_URL,
    dlqUrl: e.DLQ_URL,
    sqsEndpoint: e.SQS_ENDPOINT,
    region: e.AWS_REGION,
    issuer: e.JWT_ISSUER,
    audience: e.JWT_AUDIENCE,
    keysFile: e.KEYS_FILE ?? `${e.DATA_DIR}/keys.json`,
    keysSecretArn: e.KEYS_SECRET_ARN,
    maxClockSkewMs: e.MAX_CLOCK_SKEW_MS,
    tokenTtlSeconds: 900,
  };
}
