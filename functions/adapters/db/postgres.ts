import pg from "pg";
import type { Db, Queryable, QueryOptions } from "./db.ts";

// int8 (count(*), bigserial) as number: every value we store fits in 2^53.
const types = {
  getTypeParser: ((oid: number, format?: "text" | "binary") =>
    oid === 20
      ? (v: string) => Number(v)
      : pg.types.getTypeParser(oid, format)) as typeof pg.types.getTypeParser,
};

export interface PostgresOptions {
  connectionString?: string;
  host?: string;
  port?: number;
  user?: string;
  database?: string;
  /** A function is called for every new connection (IAM auth tokens expire). */
  password?: string | (() => Promise<string>);
  /** TLS with the server's certificate verified (RDS Proxy requires TLS). */
  ssl?: boolean;
  /**
   * Schema to use ahead of `public` (test isolation on a shared server).
   * Extensions live in `public`, which stays on the search path.
   */
  schema?: string;
  max?: number;
}

function queryable(client: pg.PoolClient): Queryable {
  return {
    async query<R>(sql: string, params?: readonly unknown[], options?: QueryOptions) {
      const result = await client.query({
        text: sql,
        values: params as unknown[] | undefined,
        name: options?.name,
      });
      return result.rows as R[];
    },
    async exec(sql: string) {
      await client.query(sql);
    },
  };
}

/**
 * Statements outside a transaction, each on a client of the pool. Not
 * `pool.query`: that discards its connection on any error, and an error the
 * server reports (a unique violation, the 40001 of a batch's checked write)
 * leaves the connection ready for the next statement. A new one costs a
 * backend with cold caches (tens of ms here; TLS and IAM auth through RDS
 * Proxy). Only a connection that failed itself is discarded.
 */
function pooled(pool: pg.Pool): Queryable {
  const onClient = async <R>(work: (client: pg.PoolClient) => Promise<R>): Promise<R> => {
    const client = await pool.connect();
    try {
      const result = await work(client);
      client.release();
      return result;
    } catch (error) {
      client.release(reusable(error) ? undefined : (error as Error));
      throw error;
    }
  };
  return {
    query: (sql, params, options) =>
      onClient((client) => queryable(client).query(sql, params, options)),
    exec: (sql) => onClient((client) => queryable(client).exec(sql)),
  };
}

/** An error the server answered with, which did not end the session. */
const reusable = (error: unknown) =>
  error instanceof pg.DatabaseError && error.severity !== "FATAL" && error.severity !== "PANIC";

/** node-postgres adapter: one pool per cold start. */
export function createPostgresDb({ schema, max = 10, ssl, ...connection }: PostgresOptions): Db {
  // Settings a connection string carries (`?options=-c …`) would replace
  // these whole in node-postgres, schema and all: they go first instead,
  // and these after them win.
  const { connectionString, options: given } = splitOptions(connection.connectionString);
  const pool = new pg.Pool({
    ...connection,
    connectionString,
    ...(ssl ? { ssl: { rejectUnauthorized: true } } : {}),
    max,
    types,
    // No JIT: every statement here reads or writes a handful of rows by
    // index. On tables without statistics their estimated cost passes
    // jit_above_cost, and compiling then took 12 ms of a 13 ms statement.
    options: [
      ...(given ? [given] : []),
      "-c jit=off",
      ...(schema ? [`-c search_path=${schema},public`] : []),
    ].join(" "),
    connectionTimeoutMillis: 5_000,
    idleTimeoutMillis: 30_000,
  });
  // An idle client losing its connection must not crash the process; the
  // next query gets a fresh one.
  pool.on("error", () => {});
  return {
    kind: "postgres",
    ...pooled(pool),
    async transaction(fn) {
      const client = await pool.connect();
      let broken: Error | undefined;
      try {
        await client.query("BEGIN");
        const result = await fn(queryable(client));
        await client.query("COMMIT");
        return result;
      } catch (error) {
        await client.query("ROLLBACK").catch((rollbackError: Error) => {
          broken = rollbackError;
        });
        throw error;
      } finally {
        // A client whose rollback failed is unusable; release(err) discards it.
        client.release(broken);
      }
    },
    close: () => pool.end(),
  };
}

/** A connection string without its `options` parameter, and that parameter. */
function splitOptions(connectionString: string | undefined): {
  connectionString: string | undefined;
  options: string | null;
} {
  if (!connectionString?.includes("options=")) return { connectionString, options: null };
  const url = new URL(connectionString);
  const options = url.searchParams.get("options");
  url.searchParams.delete("options");
  return { connectionString: url.toString(), options };
}
