// Types only: PGlite is loaded when a local cloud or a test asks for it, so
// the Lambda bundles, which leave it out, never import it.
import type { PGlite, Transaction } from "@electric-sql/pglite";
import type { Db, Queryable } from "./db.ts";

function queryable(target: PGlite | Transaction): Queryable {
  return {
    async query<R>(sql: string, params?: readonly unknown[]) {
      const result = await target.query<R>(sql, params as unknown[] | undefined);
      return result.rows;
    },
    async exec(sql: string) {
      await target.exec(sql);
    },
  };
}

/**
 * Embedded PostgreSQL (PGlite). It is a single session, so every statement
 * and transaction goes through one queue: a query from another async flow
 * must never run inside someone else's open transaction.
 *
 * @param dataDir folder to persist to; omitted, the database lives in memory.
 */
export async function createPgliteDb(dataDir?: string): Promise<Db> {
  const [{ PGlite }, { pg_trgm }] = await Promise.all([
    import("@electric-sql/pglite"),
    import("@electric-sql/pglite/contrib/pg_trgm"),
  ]);
  return pgliteDb(await PGlite.create(dataDir, { extensions: { pg_trgm } }));
}

/** The port over a PGlite instance that is already open. */
export function pgliteDb(pglite: PGlite): Db {
  let tail: Promise<unknown> = Promise.resolve();
  const serialized = <T>(work: () => Promise<T>): Promise<T> => {
    const run = tail.then(work, work);
    tail = run.catch(() => {});
    return run;
  };
  const direct = queryable(pglite);
  return {
    kind: "pglite",
    query: (sql, params) => serialized(() => direct.query(sql, params)),
    exec: (sql) => serialized(() => direct.exec(sql)),
    transaction: (fn) => serialized(() => pglite.transaction((tx) => fn(queryable(tx)))),
    close: () => serialized(() => pglite.close()),
  };
}
