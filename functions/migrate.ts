import {
  GetSecretValueCommand,
  PutSecretValueCommand,
  SecretsManagerClient,
} from "@aws-sdk/client-secrets-manager";
import type { CloudFormationCustomResourceEvent } from "aws-lambda";
import * as z from "zod";
import type { Db } from "./adapters/db/db.ts";
import { migrate, readMigrations } from "./adapters/db/migrate.ts";
import { createPostgresDb } from "./adapters/db/postgres.ts";
import { grantAppRole } from "./adapters/db/roles.ts";
import { createLogger } from "./adapters/logger.ts";
import { ensureOperator, ensureSigningKey, type SecretStore } from "./app/setup.ts";

const logger = createLogger();

/** The JSON RDS and `DatabaseSecret` store: the master's has the address too. */
const SecretSchema = z.object({
  username: z.string().min(1),
  password: z.string().min(1),
  host: z.string().min(1).optional(),
  port: z.coerce.number().int().optional(),
});

const Env = z.object({
  // LocalStack: the compose file's PostgreSQL, as the one user it has.
  DATABASE_URL: z.string().min(1).optional(),
  DB_MASTER_SECRET_ARN: z.string().startsWith("arn:").optional(),
  DB_APP_SECRET_ARN: z.string().startsWith("arn:").optional(),
  DB_NAME: z.string().min(1).default("edge_sync"),
  MIGRATIONS_DIR: z.string().min(1).optional(),
  KEYS_SECRET_ARN: z.string().startsWith("arn:"),
  OPERATOR_SECRET_ARN: z.string().startsWith("arn:"),
});

function secretsManager(client: SecretsManagerClient): SecretStore {
  return {
    async get(secretId) {
      const out = await client.send(new GetSecretValueCommand({ SecretId: secretId }));
      return out.SecretString ?? "";
    },
    async put(secretId, value) {
      await client.send(new PutSecretValueCommand({ SecretId: secretId, SecretString: value }));
    },
  };
}

/** Connects as the master user: from DATABASE_URL (LocalStack) or the RDS master secret. */
async function connect(env: z.infer<typeof Env>, store: SecretStore) {
  if (env.DATABASE_URL) {
    return { db: createPostgresDb({ connectionString: env.DATABASE_URL, max: 1 }), app: undefined };
  }
  if (!env.DB_MASTER_SECRET_ARN || !env.DB_APP_SECRET_ARN) {
    throw new Error("set DATABASE_URL, or DB_MASTER_SECRET_ARN and DB_APP_SECRET_ARN");
  }
  const [master, app] = await Promise.all(
    [env.DB_MASTER_SECRET_ARN, env.DB_APP_SECRET_ARN].map(async (arn) =>
      SecretSchema.parse(JSON.parse(await store.get(arn))),
    ),
  );
  if (!master!.host) throw new Error("the master secret names no host");
  const db: Db = createPostgresDb({
    host: master!.host,
    port: master!.port ?? 5432,
    user: master!.username,
    password: master!.password,
    database: env.DB_NAME,
    ssl: true,
    max: 1,
  });
  return { db, app };
}

/**
 * The migration custom resource: on every create and update of the stack
 * (its properties carry a hash of `db/migrations`), applies the migrations
 * not yet applied as the master user, sets up the role the functions use,
 * and on the first deploy gives the stack its first signing key and its
 * platform operator (credentials in the operator secret). Deleting the stack
 * leaves the data alone.
 */
export async function handler(event: CloudFormationCustomResourceEvent) {
  const physicalId = "edge-sync-migrations";
  if (event.RequestType === "Delete") return { PhysicalResourceId: physicalId };
  const env = Env.parse(process.env);
  const migrations = await readMigrations(env.MIGRATIONS_DIR);
  const client = new SecretsManagerClient({});
  const store = secretsManager(client);
  const { db, app } = await connect(env, store);
  try {
    const applied = await migrate(db, migrations);
    // LocalStack's PostgreSQL has one user; on RDS the functions use their own role.
    if (app) await grantAppRole(db, app.username, app.password);
    const signingKey = await ensureSigningKey(store, env.KEYS_SECRET_ARN);
    const operator = await ensureOperator(db, store, env.OPERATOR_SECRET_ARN);
    logger.info("database ready", {
      applied,
      signingKeyCreated: signingKey,
      operatorCreated: operator,
    });
    return { PhysicalResourceId: physicalId, Data: { applied: applied.join(",") } };
  } finally {
    await db.close();
    client.destroy();
  }
}
