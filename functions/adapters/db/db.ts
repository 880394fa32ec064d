/** Something SQL can be sent to: the database itself, or one open transaction. */
export interface QueryOptions {
  /**
   * Prepare the statement under this name and reuse its plan on the same
   * connection, for hot statements whose planning costs as much as running
   * them. Only for statements whose generic plan is as good as a custom one
   * (PostgreSQL switches to it after five runs). Through RDS Proxy a prepared
   * statement pins the client's session to one database connection.
   */
  name?: string;
}

export interface Queryable {
  /** One parameterised statement; returns its rows. */
  query<R = Record<string, unknown>>(
    sql: string,
    params?: readonly unknown[],
    options?: QueryOptions,
  ): Promise<R[]>;
  /** A script of several statements without parameters (migrations). */
  exec(sql: string): Promise<void>;
}

/**
 * The database port. Adapters: node-postgres (server, RDS Proxy), PGlite
 * (embedded) and the RDS Data API (Aurora). Both return int8 as number, timestamptz as Date, jsonb parsed.
 */
export interface Db extends Queryable {
  readonly kind: "postgres" | "pglite" | "data-api";
  /** Runs `fn` in one transaction: committed if it resolves, rolled back if it throws. */
  transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

const TRANSIENT_SQLSTATES = new Set([
  "40001", // serialization_failure
  "40P01", // deadlock_detected
  "55P03", // lock_not_available (lock_timeout)
  "57014", // query_canceled (statement_timeout)
  "57P01", // admin_shutdown
  "57P02", // crash_shutdown
  "57P03", // cannot_connect_now
  "53300", // too_many_connections
]);
const TRANSIENT_NODE_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ETIMEDOUT",
  "EPIPE",
  "ENOTFOUND",
]);

/** The RDS Data API's own errors that say "try again". */
const TRANSIENT_DATA_API_ERRORS = new Set([
  "DatabaseResumingException",
  "DatabaseUnavailableException",
  "ServiceUnavailableError",
  "StatementTimeoutException",
  "InternalServerErrorException",
  "ThrottlingException",
]);

/**
 * True when retrying the same work later may succeed: connection problems,
 * serialization failures, deadlocks, lock and statement timeouts.
 */
export function isTransientDbError(error: unknown): boolean {
  if (typeof error !== "object" || error === null) return false;
  const name = (error as { name?: unknown }).name;
  if (typeof name === "string" && TRANSIENT_DATA_API_ERRORS.has(name)) return true;
  const code = (error as { code?: unknown }).code;
  if (typeof code === "string") {
    if (TRANSIENT_SQLSTATES.has(code) || code.startsWith("08") || TRANSIENT_NODE_CODES.has(code)) {
      return true;
    }
  }
  const message = (error as { message?: unknown }).message;
  return (
    typeof message === "string" &&
    /Connection terminated|timeout exceeded when trying to connect/i.test(message)
  );
}
