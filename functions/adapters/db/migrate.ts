import { readdir, readFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import type { Db } from "./db.ts";

export interface Migration {
  name: string;
  sql: string;
}

export const MIGRATIONS_DIR = fileURLToPath(new URL("../../../db/migrations/", import.meta.url));

/** Reads `NNN_name.sql` files in name order. */
export async function readMigrations(dir = MIGRATIONS_DIR): Promise<Migration[]> {
  const names = (await readdir(dir)).filter((n) => /^\d+_.+\.sql$/.test(n)).sort();
  return Promise.all(
    names.map(async (name) => ({ name, sql: await readFile(`${dir}/${name}`, "utf8") })),
  );
}

// Arbitrary constant naming "edge-sync migrations" for pg_advisory_xact_lock.
const MIGRATION_LOCK_KEY = 7_310_042_001;

/**
 * Applies every migration not yet recorded, in order, in one transaction.
 * Safe to run twice and from two processes at once: the advisory lock makes
 * the second wait, and it then finds everything already applied.
 *
 * @returns the names of the migrations it applied.
 */
export async function migrate(db: Db, migrations?: Migration[]): Promise<string[]> {
  const all = migrations ?? (await readMigrations());
  return db.transaction(async (tx) => {
    await tx.query("select pg_advisory_xact_lock($1)", [MIGRATION_LOCK_KEY]);
    await tx.exec(
      "create table if not exists schema_migrations (name text primary key, applied_at timestamptz not null default now())",
    );
    const done = new Set(
      (await tx.query<{ name: string }>("select name from schema_migrations")).map((r) => r.name),
    );
    const applied: string[] = [];
    for (const migration of all) {
      if (done.has(migration.name)) continue;
      await tx.exec(migration.sql);
      await tx.query("insert into schema_migrations (name) values ($1)", [migration.name]);
      applied.push(migration.name);
    }
    return applied;
  });
}
