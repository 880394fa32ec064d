import type { Db } from "./db.ts";

const ROLE_NAME = /^[a-z_][a-z0-9_]{0,62}$/;

/**
 * Creates (or updates) the login role the functions connect as, with rights
 * on the data and nothing else: it owns no table, so it cannot drop one or
 * switch off the audit log's append-only trigger. Run after the migrations,
 * as the tables' owner.
 */
export async function grantAppRole(db: Db, role: string, password: string): Promise<void> {
  if (!ROLE_NAME.test(role)) throw new Error(`not a plain role name: ${role}`);
  await db.transaction(async (tx) => {
    const [row] = await tx.query<{ exists: boolean }>(
      "select exists (select 1 from pg_roles where rolname = $1) as exists",
      [role],
    );
    const [statement] = await tx.query<{ sql: string }>(
      "select format('%s role %I with login password %L', $1::text, $2::text, $3::text) as sql",
      [row?.exists ? "alter" : "create", role, password],
    );
    await tx.exec(statement!.sql);
    const [{ schema } = { schema: "public" }] = await tx.query<{ schema: string }>(
      "select quote_ident(current_schema()) as schema",
    );
    await tx.exec(
      [
        `grant usage on schema ${schema} to ${role}`,
        `grant select, insert, update, delete on all tables in schema ${schema} to ${role}`,
        `grant usage, select on all sequences in schema ${schema} to ${role}`,
        `revoke all on ${schema}.schema_migrations from ${role}`,
        // As the node-postgres adapter asks for itself (postgres.ts), for
        // connections that cannot: the Data API's.
        `alter role ${role} set jit = off`,
      ].join(";\n"),
    );
  });
}
