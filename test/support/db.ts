import { randomBytes } from "node:crypto";
import pg from "pg";
import { createDataApiDb } from "../../functions/adapters/db/data-api.ts";
import type { Db } from "../../functions/adapters/db/db.ts";
import { migrate } from "../../functions/adapters/db/migrate.ts";
import { createPgliteDb, pgliteDb } from "../../functions/adapters/db/pglite.ts";
import { createPostgresDb } from "../../functions/adapters/db/postgres.ts";
import { DataApiEmulator } from "./data-api-emulator.ts";

export type DbTarget = "pglite" | "postgres" | "data-api";

/**
 * The databases the database suites run on: PGlite always, and the server
 * too when DATABASE_URL is set. DB_TARGETS (comma-separated) narrows it, as
 * `npm run test:pg` does, or names `data-api`: the Data API adapter over an
 * emulated Data API client (`npm run test:data-api`).
 */
export function dbTargets(): DbTarget[] {
  const requested = process.env.DB_TARGETS?.split(",").map((t) => t.trim()) as
    | DbTarget[]
    | undefined;
  const available: DbTarget[] = [
    "pglite",
    ...(process.env.DATABASE_URL ? (["postgres"] as const) : []),
  ];
  if (!requested) return available;
  if (requested.includes("postgres") && !process.env.DATABASE_URL) {
    throw new Error("DB_TARGETS names postgres but DATABASE_URL is not set");
  }
  return requested;
}

export interface TestDb {
  db: Db;
  /** Opens another connection pool on the same database (postgres only). */
  connectAgain?: () => Db;
  /** A DATABASE_URL for this database, for code that connects by itself (postgres only). */
  url?: string;
  drop(): Promise<void>;
}

/**
 * A fresh, empty database: an in-memory PGlite, or a new schema on the
 * server so that suites running at once never see each other's rows.
 */
export async function createTestDb(target: DbTarget, { migrated = true } = {}): Promise<TestDb> {
  if (target === "data-api") {
    // Migration scripts never go through the Data API (one statement per
    // call); on AWS the migrate function runs them through pg.
    const emulator = await DataApiEmulator.create();
    await migrate(pgliteDb(emulator.pglite));
    const db = createDataApiDb({
      client: emulator,
      resourceArn: "arn:aws:rds:us-east-1:123456789012:cluster:edge-sync",
      secretArn: "arn:aws:secretsmanager:us-east-1:123456789012:secret:edge-sync-db",
      database: "edge_sync",
    });
    return { db, drop: () => emulator.close() };
  }
  if (target === "pglite") {
    const db = await createPgliteDb();
    if (migrated) await migrate(db);
    return { db, drop: () => db.close() };
  }
  const connectionString = process.env.DATABASE_URL!;
  const schema = `t_${randomBytes(6).toString("hex")}`;
  const admin = new pg.Client({ connectionString });
  await admin.connect();
  await admin.query(`create schema ${schema}`);
  // Extensions are per database: install them once, in public, where every
  // test schema finds them (and dropping a test schema cannot take them along).
  await admin.query("create extension if not exists pg_trgm schema public").catch(() => {});
  await admin.end();
  const db = createPostgresDb({ connectionString, schema });
  const others: Db[] = [];
  if (migrated) await migrate(db);
  const url = new URL(connectionString);
  url.searchParams.set("options", `-c search_path=${schema},public`);
  return {
    db,
    url: url.toString(),
    connectAgain: () => {
      const other = createPostgresDb({ connectionString, schema });
      others.push(other);
      return other;
    },
    async drop() {
      await Promise.all([db, ...others].map((d) => d.close()));
      const client = new pg.Client({ connectionString });
      await client.connect();
      await client.query(`drop schema ${schema} cascade`);
      await client.end();
    },
  };
}
