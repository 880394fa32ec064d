import {
  BeginTransactionCommand,
  CommitTransactionCommand,
  ExecuteStatementCommand,
  type ExecuteStatementCommandOutput,
  type Field,
  type RDSDataClient,
  RollbackTransactionCommand,
  type SqlParameter,
} from "@aws-sdk/client-rds-data";
import type { Db, Queryable } from "./db.ts";

/** The one SDK call the adapter needs; tests pass a client of their own. */
export type DataApiClient = Pick<RDSDataClient, "send">;

export interface DataApiOptions {
  client: DataApiClient;
  /** The Aurora cluster's ARN. */
  resourceArn: string;
  /** The Secrets Manager secret holding the database user's credentials. */
  secretArn: string;
  database: string;
  /** Rows per FETCH when a result is too large for one response (default 500). */
  pageRows?: number;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const ISO_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;
const CURSOR = "edge_sync_page";

/** The Data API's TIMESTAMP form: `YYYY-MM-DD HH:MM:SS.FFF`, in UTC. */
const timestamp = (d: Date) => d.toISOString().replace("T", " ").replace("Z", "");

/** A JS array as a PostgreSQL array literal; the SQL casts it (`$1::uuid[]`). */
function arrayLiteral(values: readonly unknown[]): string {
  const items = values.map((v) => {
    if (v === null || v === undefined) return "NULL";
    if (Array.isArray(v)) return arrayLiteral(v);
    const text = typeof v === "object" ? JSON.stringify(v) : String(v);
    return `"${text.replace(/[\\"]/g, (c) => `\\${c}`)}"`;
  });
  return `{${items.join(",")}}`;
}

/**
 * One positional parameter as a named Data API parameter. The Data API binds
 * a plain string as varchar, so UUIDs, times and JSON carry a type hint;
 * arrays, which it cannot bind, go as array literals for the SQL to cast.
 */
export function toSqlParameter(name: string, value: unknown): SqlParameter {
  if (value === null || value === undefined) return { name, value: { isNull: true } };
  if (typeof value === "boolean") return { name, value: { booleanValue: value } };
  if (typeof value === "bigint") return { name, value: { longValue: Number(value) } };
  if (typeof value === "number") {
    return Number.isInteger(value)
      ? { name, value: { longValue: value } }
      : { name, value: { doubleValue: value } };
  }
  if (value instanceof Date) {
    return { name, value: { stringValue: timestamp(value) }, typeHint: "TIMESTAMP" };
  }
  if (value instanceof Uint8Array) return { name, value: { blobValue: value } };
  if (Array.isArray(value)) return { name, value: { stringValue: arrayLiteral(value) } };
  if (typeof value === "object") {
    return { name, value: { stringValue: JSON.stringify(value) }, typeHint: "JSON" };
  }
  const text = String(value);
  if (UUID.test(text)) return { name, value: { stringValue: text }, typeHint: "UUID" };
  if (ISO_TIME.test(text) && !Number.isNaN(Date.parse(text))) {
    return { name, value: { stringValue: timestamp(new Date(text)) }, typeHint: "TIMESTAMP" };
  }
  return { name, value: { stringValue: text } };
}

/** `$1` placeholders become `:p1`; casts (`::uuid`) are left as they are. */
export function toNamedSql(sql: string): string {
  return sql.replace(/\$(\d+)\b/g, ":p$1");
}

function fromField(field: Field, typeName: string | undefined): unknown {
  if (field.isNull) return null;
  if (field.longValue !== undefined) return Number(field.longValue);
  if (field.doubleValue !== undefined) return field.doubleValue;
  if (field.booleanValue !== undefined) return field.booleanValue;
  if (field.blobValue !== undefined) return Buffer.from(field.blobValue);
  if (field.arrayValue !== undefined) return fromArray(field.arrayValue);
  const text = field.stringValue ?? "";
  switch (typeName) {
    case "timestamptz":
    case "timestamp":
      return new Date(`${text.replace(" ", "T")}Z`);
    case "json":
    case "jsonb":
      return JSON.parse(text);
    default:
      return text;
  }
}

function fromArray(array: Field["arrayValue"] | null): unknown[] {
  if (!array) return [];
  return (
    array.stringValues ??
    array.longValues?.map(Number) ??
    array.doubleValues ??
    array.booleanValues ??
    array.arrayValues?.map(fromArray) ??
    []
  );
}

/** Rows as objects keyed by column label, typed like the other adapters' rows. */
export function toRows<R>(out: ExecuteStatementCommandOutput): R[] {
  const columns = out.columnMetadata ?? [];
  return (out.records ?? []).map((record) => {
    const row: Record<string, unknown> = {};
    record.forEach((field, i) => {
      const column = columns[i];
      row[column?.label || column?.name || `column${i}`] = fromField(field, column?.typeName);
    });
    return row as R;
  });
}

const tooLarge = (error: unknown) =>
  error instanceof Error && /response size limit/i.test(error.message);

/**
 * Gives a Data API error the SQLSTATE the message carries (`SQLState: 40001`)
 * as its `code`, so callers tell transient failures as they do with `pg`.
 */
function withSqlState(error: unknown): unknown {
  if (error instanceof Error && !("code" in error)) {
    const state = /SQLState: ?([0-9A-Z]{5})/.exec(error.message)?.[1];
    if (state) Object.assign(error, { code: state });
  }
  return error;
}

/**
 * Aurora through the RDS Data API: no connections, no VPC. Statements are
 * HTTP calls; a transaction is a transaction id passed with each one. A
 * result over the Data API's 1 MiB limit is read again through a cursor, a
 * page at a time. Named prepared statements are ignored (the Data API
 * prepares nothing across calls).
 */
export function createDataApiDb(options: DataApiOptions): Db {
  const { client, resourceArn, secretArn, database } = options;
  const pageRows = options.pageRows ?? 500;

  async function execute<R>(
    sql: string,
    params: readonly unknown[],
    transactionId?: string,
  ): Promise<R[]> {
    try {
      const out = await client.send(
        new ExecuteStatementCommand({
          resourceArn,
          secretArn,
          database,
          sql: toNamedSql(sql),
          parameters: params.map((value, i) => toSqlParameter(`p${i + 1}`, value)),
          includeResultMetadata: true,
          ...(transactionId ? { transactionId } : {}),
        }),
      );
      return toRows<R>(out);
    } catch (error) {
      throw withSqlState(error);
    }
  }

  async function begin(): Promise<string> {
    const out = await client.send(
      new BeginTransactionCommand({ resourceArn, secretArn, database }),
    );
    return out.transactionId!;
  }
  const commit = (transactionId: string) =>
    client.send(new CommitTransactionCommand({ resourceArn, secretArn, transactionId }));
  const rollback = (transactionId: string) =>
    client.send(new RollbackTransactionCommand({ resourceArn, secretArn, transactionId }));

  async function inTransaction<T>(fn: (transactionId: string) => Promise<T>): Promise<T> {
    const transactionId = await begin();
    try {
      const result = await fn(transactionId);
      await commit(transactionId);
      return result;
    } catch (error) {
      await rollback(transactionId).catch(() => {});
      throw error;
    }
  }

  /**
   * Reads a result too large for one response through a cursor. A FETCH the
   * Data API refuses has still moved the cursor, so the cursor scrolls and
   * goes back to the last row read before a smaller page is fetched.
   */
  async function paged<R>(sql: string, params: readonly unknown[], transactionId: string) {
    await execute(`declare ${CURSOR} scroll cursor for ${sql}`, params, transactionId);
    const rows: R[] = [];
    let size = pageRows;
    for (;;) {
      let page: R[];
      try {
        page = await execute<R>(`fetch forward ${size} from ${CURSOR}`, [], transactionId);
      } catch (error) {
        if (!tooLarge(error) || size === 1) throw error;
        size = Math.max(1, Math.floor(size / 2));
        await execute(`move absolute ${rows.length} in ${CURSOR}`, [], transactionId);
        continue;
      }
      rows.push(...page);
      if (page.length < size) break;
    }
    await execute(`close ${CURSOR}`, [], transactionId);
    return rows;
  }

  function queryable(transactionId?: string): Queryable {
    return {
      async query<R>(sql: string, params: readonly unknown[] = []) {
        try {
          return await execute<R>(sql, params, transactionId);
        } catch (error) {
          if (!tooLarge(error) || !/^\s*(select|with|values)\b/i.test(sql)) throw error;
          return transactionId
            ? paged<R>(sql, params, transactionId)
            : inTransaction((id) => paged<R>(sql, params, id));
        }
      },
      // The Data API runs one statement per call: fine for single statements;
      // migration scripts run through `pg` instead (the migrate function).
      async exec(sql: string) {
        await execute(sql, [], transactionId);
      },
    };
  }

  return {
    kind: "data-api",
    ...queryable(),
    transaction: (fn) => inTransaction((id) => fn(queryable(id))),
    async close() {},
  };
}
