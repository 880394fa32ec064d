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

function queryable(client: pg.Pool | pg.PoolClient): Queryable {
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

/** node-postgres adapter: one pool per cold start. */
export function createPostgresDb({ schema, max = 10, ssl, ...connection }: PostgresOptions): Db {
  const pool = new pg.Pool({
    ...connection,
    ...(ssl ? { ssl: { rejectUnauthorized: true } } : {}),
    max,
    types,
    // No JIT: every statement here reads or writes a handful of rows by
    // index. On tables without statistics their estimated cost passes
    // jit_above_cost, and compiling then took 12 ms of a 13 ms statement.
    options: ["-c jit=off", ...(schema ? [`-c search_path=${schema},public`] : [])].join(" "),
    connectionTimeoutMillis: 5_000,
    idleTimeoutMillis: 30_000,
  });
  // An idle client losing its connection must not crash the process; the
  // next query gets a fresh one.
  pool.on("error", () => {});
  return {
    kind: "postgres",
    ...queryable(pool),
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
