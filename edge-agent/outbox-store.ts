import type { Change } from "../core/change.ts";
import type { JsonValue } from "../core/json.ts";
import { emptyReportState, mergeChange, type ReportState } from "../core/merge.ts";
import type { Conflict, Report } from "../core/wire.ts";
import type { PushResult } from "./client.ts";
import { LocalRemoval } from "./local-removal.ts";
import { type OutboxEntry, type ReportRow, serverState, toChange, toReport } from "./rows.ts";
import type { Statements } from "./statements.ts";
import type { AgentStatus, OutboxState } from "./types.ts";

export { type OutboxEntry, type ReportRow, stateOf, toChange, toReport } from "./rows.ts";

/**
 * The agent's SQLite tables: the local view of reports, the transactional
 * outbox and the conflicts. Knows nothing of the network or the clock.
 */
export class OutboxStore {
  /** What leaves this device: erased values, evicted reports. */
  readonly removal: LocalRemoval;

  constructor(private readonly statements: Statements) {
    this.removal = new LocalRemoval(statements, (id) => this.report(id));
  }

  private sql(text: string) {
    return this.statements.sql(text);
  }

  /** Runs `fn` in one write transaction, taken at once (BEGIN IMMEDIATE). */
  transaction<T>(fn: () => T): T {
    return this.statements.db.transaction(fn).immediate();
  }

  /**
   * Runs `fn` in one write transaction that is not flushed to the disk when
   * it commits: for what the cloud holds and can send again (a pulled page
   * with its cursor). A power cut may undo it, whole; the next write that
   * is flushed (every local write is) makes it durable too, as the WAL is
   * written in order. Synchronous, so no other write of this connection can
   * fall in between.
   */
  transactionRecoverable<T>(fn: () => T): T {
    const { db } = this.statements;
    db.pragma("synchronous = NORMAL");
    try {
      return this.transaction(fn);
    } finally {
      db.pragma("synchronous = FULL");
    }
  }

  /** Writes the WAL back into the database file and empties it. */
  checkpoint(): void {
    this.statements.db.pragma("wal_checkpoint(TRUNCATE)");
  }

  report(id: string): ReportRow | undefined {
    return this.sql("select * from reports where id = ?").get(id) as ReportRow | undefined;
  }

  /** Stores a local write: the report's new local view and its outbox entry (call in one transaction). */
  storeWrite(change: Change, state: ReportState, at: string, deviceId: string): void {
    this.sql(
      `insert into reports (id, fields, clocks, deleted_hlc, version, created_at, updated_at, created_by, updated_by, scope)
         values (@id, @fields, @clocks, @deleted, 0, @at, @at, @device, @device, @scope)
         on conflict (id) do update set fields = @fields, clocks = @clocks, deleted_hlc = @deleted,
           updated_at = @at, updated_by = @device`,
    ).run({
      id: change.reportId,
      fields: JSON.stringify(state.fields),
      clocks: JSON.stringify(state.clocks),
      deleted: state.deletedHlc,
      at,
      device: deviceId,
      scope: change.scope ?? null,
    });
    this.enqueue(change, at);
  }

  private enqueue(change: Change, at: string): void {
    this.sql(
      `insert into outbox (change_id, report_id, op, hlc, fields, base, sig, scope, created_at)
         values (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    ).run(
      change.changeId,
      change.reportId,
      change.op,
      change.hlc,
      change.op === "upsert" ? JSON.stringify(change.fields) : null,
      change.op === "upsert" && change.base ? JSON.stringify(change.base) : null,
      change.sig ?? null,
      change.scope ?? null,
      at,
    );
  }

  /** Reports, newest first; `q` matches any string field value, case-insensitively. */
  list(q?: string): Report[] {
    const rows = this.sql(
      "select * from reports where evicted = 0 order by updated_at desc, id",
    ).all() as ReportRow[];
    const reports = rows.map(toReport);
    if (!q) return reports;
    const needle = q.toLowerCase();
    return reports.filter((r) =>
      Object.values(r.fields).some(
        (v: JsonValue) => typeof v === "string" && v.toLowerCase().includes(needle),
      ),
    );
  }

  conflicts(): Conflict[] {
    return (
      this.sql("select body from conflicts order by detected_at, id").all() as { body: string }[]
    ).map((r) => JSON.parse(r.body) as Conflict);
  }

  /** The outbox's side of `status()`. */
  counts(): Omit<
    AgentStatus,
    "deviceId" | "apiUrl" | "lastSyncAt" | "lastError" | "signingKey" | "scopes"
  > {
    const counts = Object.fromEntries(
      (
        this.sql("select state, count(*) as n from outbox group by state").all() as {
          state: OutboxState;
          n: number;
        }[]
      ).map((r) => [r.state, r.n]),
    ) as Partial<Record<OutboxState, number>>;
    const rejected = this.sql(
      "select change_id, report_id, code, message, replaced_by from outbox where state = 'rejected' order by seq desc limit 20",
    ).all() as {
      change_id: string;
      report_id: string;
      code: string | null;
      message: string | null;
      replaced_by: string | null;
    }[];
    return {
      pending: counts.pending ?? 0,
      sent: counts.sent ?? 0,
      applied: counts.applied ?? 0,
      partial: counts.partial ?? 0,
      superseded: counts.superseded ?? 0,
      rejected: counts.rejected ?? 0,
      conflicts: (this.sql("select count(*) as n from conflicts").get() as { n: number }).n,
      rejectedChanges: rejected.map((r) => ({
        changeId: r.change_id,
        reportId: r.report_id,
        code: r.code,
        message: r.message,
        replacedBy: r.replaced_by,
      })),
    };
  }

  /** The newest outbox entry's position: it moves whenever any process writes. */
  lastSeq(): number {
    return (this.sql("select coalesce(max(seq), 0) as seq from outbox").get() as { seq: number })
      .seq;
  }

  /** Entries to send: pending ones, and sent ones unacknowledged since `staleBefore`. */
  due(staleBefore: string): OutboxEntry[] {
    return this.sql(
      "select * from outbox where state = 'pending' or (state = 'sent' and sent_at < ?) order by seq",
    ).all(staleBefore) as OutboxEntry[];
  }

  /** Records the cloud's answer to a push. */
  recordPush(result: PushResult, at: string): void {
    const sent = this.sql(
      "update outbox set state = 'sent', sent_at = ?, attempts = attempts + 1 where change_id = ? and state in ('pending', 'sent')",
    );
    const rejected = this.sql(
      "update outbox set state = 'rejected', code = ?, message = ?, acked_at = ? where change_id = ? and state in ('pending', 'sent') returning report_id",
    );
    this.transaction(() => {
      for (const id of result.accepted) sent.run(at, id);
      const touched = new Set<string>();
      for (const r of result.rejected) {
        const row = rejected.get(r.code, r.message, at, r.changeId) as
          | { report_id: string }
          | undefined;
        if (row) touched.add(row.report_id);
      }
      for (const id of touched) this.rebuild(id);
      this.removal.dropEvicted();
    });
  }

  /**
   * Stores a pulled report as the cloud's state, and as the local view too:
   * what it is unless this device has changes to it still unacknowledged
   * (`withUnacked`), which `rebuild` then merges on top (call in one
   * transaction).
   */
  storeServerReport(report: Report): void {
    const state = serverState(report);
    this.sql(
      `insert into reports (id, fields, clocks, deleted_hlc, version, created_at, updated_at, created_by, updated_by, server, scope)
       values (@id, @fields, @clocks, @deleted, @version, @createdAt, @updatedAt, @createdBy, @updatedBy, @server, @scope)
       on conflict (id) do update set fields = @fields, clocks = @clocks, deleted_hlc = @deleted,
         server = @server, version = @version, created_at = @createdAt,
         updated_at = @updatedAt, created_by = @createdBy, updated_by = @updatedBy, scope = @scope, evicted = 0`,
    ).run({
      ...report,
      scope: report.scope ?? null,
      fields: JSON.stringify(state.fields),
      clocks: JSON.stringify(state.clocks),
      deleted: state.deletedHlc,
      server: JSON.stringify(report),
    });
  }

  /** The reports this device has changes to that the cloud has not acknowledged. */
  withUnacked(): Set<string> {
    const rows = this.sql(
      "select distinct report_id from outbox where state in ('pending', 'sent')",
    ).pluck();
    return new Set(rows.all() as string[]);
  }

  /** Records a pulled outcome; returns the report of a change it rejected. */
  acknowledge(
    ack: { changeId: string; outcome: OutboxState; code?: string; message?: string },
    at: string,
  ): string | undefined {
    const row = this.sql(
      "update outbox set state = ?, code = ?, message = ?, acked_at = ? where change_id = ? and state in ('pending', 'sent') returning report_id",
    ).get(ack.outcome, ack.code ?? null, ack.message ?? null, at, ack.changeId) as
      | { report_id: string }
      | undefined;
    return row && ack.outcome === "rejected" ? row.report_id : undefined;
  }

  storeConflict(conflict: Conflict): void {
    this.sql(
      "insert into conflicts (id, report_id, detected_at, body) values (?, ?, ?, ?) on conflict (id) do nothing",
    ).run(conflict.id, conflict.reportId, conflict.detectedAt, JSON.stringify(conflict));
  }

  /** Local view = last pulled server state + this device's unacknowledged changes, in order. */
  rebuild(reportId: string): void {
    const row = this.report(reportId);
    if (!row) return;
    const server = row.server ? (JSON.parse(row.server) as Report) : undefined;
    let state = server ? serverState(server) : emptyReportState();
    const pending = this.sql(
      "select * from outbox where report_id = ? and state in ('pending', 'sent') order by seq",
    ).all(reportId) as OutboxEntry[];
    for (const entry of pending) state = mergeChange(state, toChange(entry)).state;
    if (!server && pending.length === 0) {
      // Created here and rejected by the cloud: nothing of it exists anywhere.
      this.sql("delete from reports where id = ?").run(reportId);
      return;
    }
    this.sql(
      "update reports set fields = ?, clocks = ?, deleted_hlc = ?, version = ? where id = ?",
    ).run(
      JSON.stringify(state.fields),
      JSON.stringify(state.clocks),
      state.deletedHlc,
      server?.version ?? 0,
      reportId,
    );
  }

  /** Changes the cloud refused for their clock and not yet sent again. */
  skewed(): OutboxEntry[] {
    return this.sql(
      "select * from outbox where state = 'rejected' and code = 'clock_skew' and replaced_by is null order by seq",
    ).all() as OutboxEntry[];
  }

  /** The highest stamp of every change the cloud did not refuse for its clock. */
  highestKeptHlc(): string | null {
    return (
      this.sql(
        "select max(hlc) as hlc from outbox where not (state = 'rejected' and code = 'clock_skew')",
      ).get() as { hlc: string | null }
    ).hlc;
  }

  /** Queues `replacement` in place of a refused entry, with the same edit. */
  replace(entry: OutboxEntry, replacement: Change, at: string): void {
    this.enqueue(replacement, at);
    this.sql("update outbox set replaced_by = ? where change_id = ?").run(
      replacement.changeId,
      entry.change_id,
    );
  }
}
