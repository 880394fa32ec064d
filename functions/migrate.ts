import { GetSecretValueCommand, SecretsManagerClient } from "@aws-sdk/client-secrets-manager";
import type { CloudFormationCustomResourceEvent } from "aws-lambda";
import { z } from "zod";
import { migrate, readMigrations } from "./lib/db/migrate.ts";
import { createPostgresDb } from "./lib/db/postgres.ts";
import { grantAppRole } from "./lib/db/roles.ts";
import { createLogger } from "./lib/logger.ts";

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
});

async function secret(client: SecretsManagerClient, arn: string) {
  const out = await client.send(new GetSecretValueCommand({ SecretId: arn }));
  return SecretSchema.parse(JSON.parse(out.SecretString ?? "{}"));
}

/**
 * The migration custom resource: on every create and update of the stack
 * (its properties carry a hash of `db/migrations`), applies the migrations
 * not yet applied as the master user, then sets up the role the functions
 * use. Deleting the stack leaves the data alone.
 */
export async function handler(event: CloudFormationCustomResourceEvent) {
  const physicalId = "edge-sync-migrations";
  if (event.RequestType === "Delete") return { PhysicalResourceId: physicalId };
  const env = Env.parse(process.env);
  const migrations = await readMigrations(env.MIGRATIONS_DIR);
  if (env.DATABASE_URL) {
    const db = createPostgresDb({ connectionString: env.DATABASE_URL, max: 1 });
    try {
      const applied = await migrate(db, migrations);
      return { PhysicalResourceId: physicalId, Data: { applied: applied.join(",") } };
    } finally {
      await db.close();
    }
  }
  if (!env.DB_MASTER_SECRET_ARN || !env.DB_APP_SECRET_ARN) {
    throw new Error("set DATABASE_URL, or DB_MASTER_SECRET_ARN and DB_APP_SECRET_ARN");
  }
  const client = new SecretsManagerClient({});
  const [master, app] = await Promise.all([
    secret(client, env.DB_MASTER_SECRET_ARN),
    secret(client, env.DB_APP_SECRET_ARN),
  ]);
  if (!master.host) throw new Error("the master secret names no host");
  const db = createPostgresDb({
    host: master.host,
    port: master.port ?? 5432,
    user: master.username,
    password: master.password,
    database: env.DB_NAME,
    ssl: true,
    max: 1,
  });
  try {
    const applied = await migrate(db, migrations);
    await grantAppRole(db, app.username, app.password);
    logger.info("migrations applied", { applied });
    return { PhysicalResourceId: physicalId, Data: { applied: applied.join(",") } };
  } finally {
    await db.close();
  }
}
