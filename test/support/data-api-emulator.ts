import {
  BadRequestException,
  BeginTransactionCommand,
  CommitTransactionCommand,
  DatabaseErrorException,
  ExecuteStatementCommand,
  type ExecuteStatementCommandOutput,
  type Field,
  RollbackTransactionCommand,
  type SqlParameter,
  TransactionNotFoundException,
} from "@aws-sdk/client-rds-data";
import { PGlite } from "@electric-sql/pglite";
import { pg_trgm } from "@electric-sql/pglite/contrib/pg_trgm";
import type { DataApiClient } from "../../functions/adapters/db/data-api.ts";

/** How the Data API binds each kind of value: a plain string is varchar. */
const HINT_CASTS: Record<string, string> = {
  UUID: "uuid",
  TIMESTAMP: "timestamp",
  JSON: "json",
  DATE: "date",
  TIME: "time",
  DECIMAL: "numeric",
};

const metadata = { $metadata: {} };

export interface SentStatement {
  sql: string;
  parameters: SqlParameter[];
  transactionId?: string;
}

/**
 * A stand-in for the RDS Data API client, over an in-memory PGlite: the one
 * part of the Data API adapter's world that has no local form. It binds
 * parameters as the Data API does (strings as varchar unless hinted; no
 * arrays), answers with records and column metadata, refuses results over
 * its response limit, and records every statement it was sent.
 */
export class DataApiEmulator implements DataApiClient {
  readonly sent: SentStatement[] = [];
  private readonly typeNames = new Map<number, string>();
  private transaction: { id: string; done: () => void } | undefined;
  private queue: Promise<void> = Promise.resolve();

  private constructor(
    readonly pglite: PGlite,
    /** Bytes of records one response may carry (the Data API's is 1 MiB). */
    public responseLimit = 1024 * 1024,
  ) {}

  static async create(): Promise<DataApiEmulator> {
    const pglite = await PGlite.create({ extensions: { pg_trgm } });
    // Aurora's default; TIMESTAMP-hinted parameters are read in it.
    await pglite.exec("set time zone 'UTC'");
    return new DataApiEmulator(pglite);
  }

  /** Waits its turn: one transaction at a time, like PGlite's one session. */
  private lock(): Promise<() => void> {
    let release!: () => void;
    const turn = this.queue;
    this.queue = new Promise<void>((resolve) => {
      release = resolve;
    });
    return turn.then(() => release);
  }

  // biome-ignore lint/suspicious/noExplicitAny: the SDK's send is overloaded per command.
  async send(command: any): Promise<any> {
    if (command instanceof BeginTransactionCommand) {
      const done = await this.lock();
      const id = crypto.randomUUID();
      await this.pglite.exec("begin");
      this.transaction = { id, done };
      return { ...metadata, transactionId: id };
    }
    if (
      command instanceof CommitTransactionCommand ||
      command instanceof RollbackTransactionCommand
    ) {
      const tx = this.own(command.input.transactionId);
      try {
        await this.pglite.exec(command instanceof CommitTransactionCommand ? "commit" : "rollback");
      } finally {
        this.transaction = undefined;
        tx.done();
      }
      return { ...metadata, transactionStatus: "done" };
    }
    if (command instanceof ExecuteStatementCommand) {
      const { sql, parameters = [], transactionId } = command.input;
      this.sent.push({ sql: sql!, parameters, ...(transactionId ? { transactionId } : {}) });
      if (transactionId) {
        this.own(transactionId);
        return this.execute(sql!, parameters);
      }
      const done = await this.lock();
      try {
        return await this.execute(sql!, parameters);
      } finally {
        done();
      }
    }
    throw new Error(`the emulator does not know ${command.constructor.name}`);
  }

  private own(transactionId: string | undefined) {
    if (!this.transaction || this.transaction.id !== transactionId) {
      throw new TransactionNotFoundException({ message: "Transaction is not found", ...metadata });
    }
    return this.transaction;
  }

  private bind(sql: string, parameters: SqlParameter[]): { text: string; values: unknown[] } {
    const values: unknown[] = [];
    const positions = new Map<string, string>();
    for (const p of parameters) {
      const v: Field = p.value ?? { isNull: true };
      if ("arrayValue" in v && v.arrayValue) {
        throw new BadRequestException({
          message: "Array parameters are not supported",
          ...metadata,
        });
      }
      let value: unknown;
      let cast: string | undefined;
      if (v.isNull) value = null;
      else if (v.stringValue !== undefined) {
        value = v.stringValue;
        cast = p.typeHint ? HINT_CASTS[p.typeHint] : "varchar";
      } else if (v.longValue !== undefined) [value, cast] = [v.longValue, "bigint"];
      else if (v.doubleValue !== undefined) [value, cast] = [v.doubleValue, "float8"];
      else if (v.booleanValue !== undefined) [value, cast] = [v.booleanValue, "boolean"];
      else if (v.blobValue !== undefined) [value, cast] = [v.blobValue, "bytea"];
      values.push(value);
      positions.set(p.name!, `$${values.length}${cast ? `::${cast}` : ""}`);
    }
    const text = sql.replace(/(?<![:\w]):([A-Za-z_]\w*)/g, (match, name: string) => {
      const bound = positions.get(name);
      return bound ? `(${bound})` : match;
    });
    if (/(?<![\w$])\$\d/.test(sql)) {
      throw new BadRequestException({
        message: "Positional parameters are not supported",
        ...metadata,
      });
    }
    return { text, values };
  }

  private async execute(
    sql: string,
    parameters: SqlParameter[],
  ): Promise<ExecuteStatementCommandOutput> {
    const { text, values } = this.bind(sql, parameters);
    let result: Awaited<ReturnType<PGlite["query"]>>;
    try {
      result = await this.pglite.query(text, values);
    } catch (error) {
      const e = error as { message: string; code?: string };
      throw new DatabaseErrorException({
        message: `ERROR: ${e.message}; SQLState: ${e.code ?? "XX000"}`,
        ...metadata,
      });
    }
    const columnMetadata = await Promise.all(
      result.fields.map(async (f) => ({
        name: f.name,
        label: f.name,
        typeName: await this.typeName(f.dataTypeID),
      })),
    );
    const records = (result.rows as Record<string, unknown>[]).map((row) =>
      result.fields.map((f, i) => toField(row[f.name], columnMetadata[i]!.typeName)),
    );
    if (Buffer.byteLength(JSON.stringify(records)) > this.responseLimit) {
      throw new BadRequestException({
        message: "Database returned more than the allowed response size limit",
        ...metadata,
      });
    }
    return {
      ...metadata,
      records,
      columnMetadata,
      numberOfRecordsUpdated: result.affectedRows ?? 0,
    };
  }

  private async typeName(oid: number): Promise<string> {
    let name = this.typeNames.get(oid);
    if (!name) {
      const { rows } = await this.pglite.query<{ typname: string }>(
        "select typname from pg_type where oid = $1",
        [oid],
      );
      name = rows[0]?.typname ?? "unknown";
      this.typeNames.set(oid, name);
    }
    return name;
  }

  close(): Promise<void> {
    return this.pglite.close();
  }
}

/** A value as the Data API answers it: times and JSON as strings, arrays as arrayValue. */
function toField(value: unknown, typeName: string): Field {
  if (value === null || value === undefined) return { isNull: true };
  if (typeName.startsWith("_") && Array.isArray(value)) {
    const list = value as unknown[];
    if (list.every((v) => typeof v === "number"))
      return { arrayValue: { longValues: list as number[] } };
    if (list.every((v) => typeof v === "boolean")) {
      return { arrayValue: { booleanValues: list as boolean[] } };
    }
    return { arrayValue: { stringValues: list.map(String) } };
  }
  if (typeof value === "boolean") return { booleanValue: value };
  if (typeof value === "bigint") return { longValue: Number(value) };
  if (typeof value === "number") {
    return ["int2", "int4", "int8"].includes(typeName)
      ? { longValue: value }
      : { doubleValue: value };
  }
  if (value instanceof Date)
    return { stringValue: value.toISOString().replace("T", " ").replace("Z", "") };
  if (value instanceof Uint8Array) return { blobValue: value };
  if (typeName === "json" || typeName === "jsonb") return { stringValue: JSON.stringify(value) };
  return { stringValue: String(value) };
}
