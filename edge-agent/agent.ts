import type Database from "better-sqlite3";
import { v7 as uuidv7 } from "uuid";
import { type Change, checkShape, type RejectionCode } from "../core/change.ts";
import { formatHlc, type Hlc, parseHlc, receiveHlc, tickHlc } from "../core/hlc.ts";
import type { JsonObject, JsonValue } from "../core/json.ts";
import { MAX_CHANGES_PER_REQUEST, MAX_REQUEST_BYTES } from "../core/limits.ts";
import { emptyReportState, mergeChange, type ReportState } from "../core/merge.ts";
import type { Conflict, Report, SyncPage } from "../core/types.ts";
import { type BackoffOptions, DEFAULT_BACKOFF, retryDelayMs } from "./backoff.ts";
import { CloudRequestError, CloudUnreachableError, type PushResult, SyncClient } from "./client.ts";
import { openStore } from "./store.ts";

/** A local command could not be done; `code` is stable for scripts. */
export class EdgeAgentError extends Error {
  override name = "EdgeAgentError";
  constructor(
    readonly code:
      | "not_initialized"
      | "not_found"
      | "report_deleted"
      | "not_a_device"
      // A write the cloud would refuse: nothing was stored.
      | RejectionCode,
    message: string,
  ) {
    super(message);
  }
}

/** Another process is in the middle of a sync round on this database. */
export class SyncBusyError extends Error {
  override name = "SyncBusyError";
}

export type OutboxState = "pending" | "sent" | "applied" | "partial" | "superseded" | "rejected";

export interface AgentStatus {
  deviceId: string | null;
  apiUrl: string | null;
  pending: number;
  sent: number;
  applied: number;
  partial: number;
  superseded: number;
  rejected: number;
  conflicts: number;
  lastSyncAt: string | null;
  lastError: string | null;
  /** The most recent changes the cloud refused, with why (newest first, at most 20). */
  rejectedChanges: {
    changeId: string;
    reportId: string;
    code: string | null;
    message: string | null;
    /** The change sent in its place, for one refused only for its clock. */
    replacedBy: string | null;
  }[];
}

export interface SyncProgress {
  phase: "push" | "pull";
  done: number;
  total?: number;
}

export interface SyncSummary {
  pushed: number;
  rejected: number;
  failed: number;
  pulledReports: number;
  acks: number;
  conflicts: number;
}

export interface EdgeAgentOptions {
  /** Wall clock in epoch milliseconds. */
  now?: () => number;
  /** A change sent but not acknowledged for this long is sent again. */
  resendAfterMs?: number;
  /** Per HTTP request. */
  requestTimeoutMs?: number;
  /** Push at most this many changes per request (the API allows 500). */
  maxBatchChanges?: number;
  /** Push at most this many bytes per request body (the API allows 5 MiB). */
  maxBatchBytes?: number;
  pullPageSize?: number;
  /** How long `syncOnce` waits for another process's round to finish. */
  lockWaitMs?: number;
  /** Retry policy of `run` after a failed round. */
  backoff?: BackoffOptions;
}

export type RoundResult =
  | { ok: true; summary: SyncSummary }
  | { ok: false; error: Error; retryInMs: number };

export interface RunOptions {
  /** Sync at least this often. */
  intervalMs: number;
  /** Stops the loop; a round in progress finishes first. */
  signal: AbortSignal;
  onRound?: (result: RoundResult) => void;
}

type ResolvedOptions = Required<EdgeAgentOptions>;

const DEFAULTS: ResolvedOptions = {
  now: Date.now,
  resendAfterMs: 10 * 60_000,
  requestTimeoutMs: 30_000,
  maxBatchChanges: MAX_CHANGES_PER_REQUEST,
  maxBatchBytes: MAX_REQUEST_BYTES,
  pullPageSize: 500,
  lockWaitMs: 30_000,
  backoff: DEFAULT_BACKOFF,
};
/** After a local write, wait this long for more before syncing them together. */
const WRITE_DEBOUNCE_MS = 200;
const WATCH_EVERY_MS = 250;
/** A sync lock not renewed for this long belongs to nobody. */
const LOCK_LEASE_MS = 60_000;
/** The envelope of a push body around its changes: `{"changes":[` … `]}`. */
const PUSH_ENVELOPE_BYTES = '{"changes":[]}'.length;
/**
 * Statuses with which the cloud refuses a whole push for something in it
 * (a limit, a shape). Retrying the same body cannot help; splitting it finds
 * the change at fault.
 */
const REFUSED_FOR_CONTENT = new Set([400, 413, 415]);
/** Refresh a token this long before it expires. */
const TOKEN_MARGIN_MS = 60_000;

interface ReportRow {
  id: string;
  fields: string;
  clocks: string;
  deleted_hlc: string | null;
  version: number;
  created_at: string;
  updated_at: string;
  created_by: string | null;
  updated_by: string | null;
  server: string | null;
}

interface OutboxRow {
  seq: number;
  change_id: string;
  report_id: string;
  op: "upsert" | "delete";
  hlc: string;
  fields: string | null;
  base: string | null;
  state: OutboxState;
}

function toChange(row: OutboxRow): Change {
  return row.op === "upsert"
    ? {
        changeId: row.change_id,
        reportId: row.report_id,
        op: "upsert",
        hlc: row.hlc,
        fields: JSON.parse(row.fields ?? "{}") as JsonObject,
        base: JSON.parse(row.base ?? "{}") as Record<string, string | null>,
      }
    : { changeId: row.change_id, reportId: row.report_id, op: "delete", hlc: row.hlc };
}

function toReport(row: ReportRow): Report {
  return {
    id: row.id,
    fields: JSON.parse(row.fields) as JsonObject,
    clocks: JSON.parse(row.clocks) as Record<string, string>,
    deleted: row.deleted_hlc !== null,
    version: row.version,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    createdBy: row.created_by,
    updatedBy: row.updated_by,
  };
}

/** The server's view of a report as merge state (writers are the server's business). */
function serverState(report: Report): ReportState {
  return {
    fields: report.fields,
    clocks: report.clocks,
    writers: {},
    deletedHlc: report.deleted ? "" : null,
  };
}

/**
 * The edge agent: an offline-first store of reports in SQLite with a
 * transactional outbox, and the sync round that pushes the outbox and pulls
 * the merged state.
 *
 * @example
 * const agent = EdgeAgent.open("site.db");
 * const report = agent.create({ title: "Pump 3 leaking" });
 * await agent.syncOnce();
 */
export class EdgeAgent {
  private readonly options: ResolvedOptions;

  private constructor(
    private readonly db: Database.Database,
    options: EdgeAgentOptions,
  ) {
    this.options = { ...DEFAULTS, ...options };
  }

  /** Opens or creates the agent's database file. */
  static open(path: string, options: EdgeAgentOptions = {}): EdgeAgent {
    return new EdgeAgent(openStore(path), options);
  }

  close(): void {
    this.db.close();
  }

  private readonly statements = new Map<string, Database.Statement>();

  /** A prepared statement, compiled once per agent. */
  private sql(text: string): Database.Statement {
    let statement = this.statements.get(text);
    if (!statement) {
      statement = this.db.prepare(text);
      this.statements.set(text, statement);
    }
    return statement;
  }

  private meta(key: string): string | null {
    const row = this.sql("select value from meta where key = ?").get(key) as
      | { value: string }
      | undefined;
    return row?.value ?? null;
  }

  private setMeta(key: string, value: string | null): void {
    if (value === null) this.sql("delete from meta where key = ?").run(key);
    else
      this.sql(
        "insert into meta (key, value) values (?, ?) on conflict (key) do update set value = excluded.value",
      ).run(key, value);
  }

  private client(): SyncClient {
    const apiUrl = this.meta("apiUrl");
    if (!apiUrl) throw new EdgeAgentError("not_initialized", "Run `edge-agent init` first.");
    return new SyncClient({ apiUrl, timeoutMs: this.options.requestTimeoutMs });
  }

  /**
   * Stores the cloud's address and this device's credentials, and learns the
   * device id from the cloud (the one command that needs the network).
   */
  async init(
    apiUrl: string,
    clientId: string,
    clientSecret: string,
  ): Promise<{ deviceId: string; projectId: string }> {
    const client = new SyncClient({ apiUrl, timeoutMs: this.options.requestTimeoutMs });
    const { accessToken, expiresIn } = await client.token(clientId, clientSecret);
    const me = await client.me(accessToken);
    if (me.role !== "device" || !me.project) {
      throw new EdgeAgentError(
        "not_a_device",
        `These credentials are a ${me.role}'s, not a device's.`,
      );
    }
    const previous = this.meta("deviceId");
    if (previous && previous !== me.id) {
      throw new EdgeAgentError(
        "not_a_device",
        `This database belongs to device ${previous}; use a new --db.`,
      );
    }
    this.db.transaction(() => {
      this.setMeta("apiUrl", apiUrl);
      this.setMeta("clientId", clientId);
      this.setMeta("clientSecret", clientSecret);
      this.setMeta("deviceId", me.id);
      this.setMeta("projectId", me.project);
      this.setMeta("token", accessToken);
      this.setMeta("tokenExpiresAt", String(this.options.now() + expiresIn * 1000));
      if (!this.meta("hlc")) this.setMeta("hlc", formatHlc({ wall: 0, counter: 0, node: me.id }));
    })();
    return { deviceId: me.id, projectId: me.project };
  }

  private knownDeviceId: string | undefined;

  /** This device's id; it never changes once `init` has learnt it. */
  private deviceId(): string {
    this.knownDeviceId ??= this.meta("deviceId") ?? undefined;
    if (!this.knownDeviceId)
      throw new EdgeAgentError("not_initialized", "Run `edge-agent init` first.");
    return this.knownDeviceId;
  }

  /**
   * Wall time corrected by the offset to the cloud's clock learnt on the last
   * pull, so a device whose clock runs fast or slow still stamps its writes
   * near server time (the cloud refuses stamps more than 5 minutes ahead).
   */
  /**
   * The next stamp of this device's clock, past every stamp in `seen`: an
   * edit made after seeing a value must win over it (HLC receive rule), even
   * when the device that wrote it has a faster clock.
   */
  private nextStamp(seen: (string | undefined)[]): Hlc {
    let clock = this.clock();
    const now = this.wallNow();
    for (const stamp of seen) {
      const remote = stamp ? parseHlc(stamp) : undefined;
      if (remote && formatHlc({ ...remote, node: clock.node }) > formatHlc(clock))
        clock = receiveHlc(clock, remote, now);
    }
    return tickHlc(clock, now);
  }

  private wallNow(): number {
    return this.options.now() + Number(this.meta("clockOffsetMs") ?? 0);
  }

  private clock(): Hlc {
    const text = this.meta("hlc");
    return (text && parseHlc(text)) || { wall: 0, counter: 0, node: this.deviceId() };
  }

  private row(id: string): ReportRow | undefined {
    return this.sql("select * from reports where id = ?").get(id) as ReportRow | undefined;
  }

  private stateOf(row: ReportRow | undefined): ReportState {
    if (!row) return emptyReportState();
    return {
      fields: JSON.parse(row.fields) as JsonObject,
      clocks: JSON.parse(row.clocks) as Record<string, string>,
      writers: {},
      deletedHlc: row.deleted_hlc,
    };
  }

  private write(reportId: string, op: "create" | "upsert" | "delete", fields?: JsonObject): Report {
    return this.db
      .transaction(() => {
        const deviceId = this.deviceId();
        const row = this.row(reportId);
        if (op === "create" && row)
          throw new EdgeAgentError("invalid_change", `Report ${reportId} already exists.`);
        if (op !== "create" && !row)
          throw new EdgeAgentError("not_found", `No report ${reportId}.`);
        const state = this.stateOf(row);
        if (state.deletedHlc !== null)
          throw new EdgeAgentError("report_deleted", `Report ${reportId} is deleted.`);

        const nowMs = this.options.now();
        const hlc = formatHlc(
          this.nextStamp(Object.keys(fields ?? {}).map((f) => state.clocks[f])),
        );
        const raw: Change =
          op === "delete"
            ? { changeId: uuidv7(), reportId, op: "delete", hlc }
            : {
                changeId: uuidv7(),
                reportId,
                op: "upsert",
                hlc,
                fields: fields ?? {},
                // What this editor saw of each field it edits: the cloud
                // detects concurrent edits from it.
                base: Object.fromEntries(
                  Object.keys(fields ?? {}).map((f) => [f, state.clocks[f] ?? null]),
                ),
              };
        // Every limit the cloud enforces, checked before anything is stored:
        // a change in the outbox is one the cloud can take.
        const checked = checkShape(raw);
        if (!("change" in checked)) throw new EdgeAgentError(checked.code, checked.message);
        const { change } = checked;
        const merged = mergeChange(state, change);
        const at = new Date(nowMs).toISOString();
        this.sql(
          `insert into reports (id, fields, clocks, deleted_hlc, version, created_at, updated_at, created_by, updated_by)
             values (@id, @fields, @clocks, @deleted, 0, @at, @at, @device, @device)
             on conflict (id) do update set fields = @fields, clocks = @clocks, deleted_hlc = @deleted,
               updated_at = @at, updated_by = @device`,
        ).run({
          id: reportId,
          fields: JSON.stringify(merged.state.fields),
          clocks: JSON.stringify(merged.state.clocks),
          deleted: merged.state.deletedHlc,
          at,
          device: deviceId,
        });
        this.sql(
          `insert into outbox (change_id, report_id, op, hlc, fields, base, created_at)
             values (?, ?, ?, ?, ?, ?, ?)`,
        ).run(
          change.changeId,
          reportId,
          change.op,
          change.hlc,
          change.op === "upsert" ? JSON.stringify(change.fields) : null,
          change.op === "upsert" && change.base ? JSON.stringify(change.base) : null,
          at,
        );
        this.setMeta("hlc", hlc);
        return {
          id: reportId,
          fields: merged.state.fields,
          clocks: merged.state.clocks,
          deleted: merged.state.deletedHlc !== null,
          version: row?.version ?? 0,
          createdAt: row?.created_at ?? at,
          updatedAt: at,
          createdBy: row ? row.created_by : deviceId,
          updatedBy: deviceId,
        };
      })
      .immediate();
  }

  /** Creates a report (a new UUID unless `id` is given). Works offline. */
  create(fields: JsonObject, id: string = crypto.randomUUID()): Report {
    return this.write(id, "create", fields);
  }

  /** Sets fields (null clears one). Works offline. */
  update(id: string, fields: JsonObject): Report {
    return this.write(id, "upsert", fields);
  }

  /** Deletes a report (a tombstone that wins over later edits). Works offline. */
  delete(id: string): Report {
    return this.write(id, "delete");
  }

  get(id: string): Report | undefined {
    const row = this.row(id);
    return row ? toReport(row) : undefined;
  }

  /** Reports, newest first; `q` matches any string field value, case-insensitively. */
  list(q?: string): Report[] {
    const rows = this.sql(
      "select * from reports order by updated_at desc, id",
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
      this.sql("select body from conflicts order by detected_at, id").all() as {
        body: string;
      }[]
    ).map((r) => JSON.parse(r.body) as Conflict);
  }

  status(): AgentStatus {
    const counts = Object.fromEntries(
      (
        this.sql("select state, count(*) as n from outbox group by state").all() as {
          state: OutboxState;
          n: number;
        }[]
      ).map((r) => [r.state, r.n]),
    ) as Partial<Record<OutboxState, number>>;
    const conflicts = (this.sql("select count(*) as n from conflicts").get() as { n: number }).n;
    return {
      deviceId: this.meta("deviceId"),
      apiUrl: this.meta("apiUrl"),
      pending: counts.pending ?? 0,
      sent: counts.sent ?? 0,
      applied: counts.applied ?? 0,
      partial: counts.partial ?? 0,
      superseded: counts.superseded ?? 0,
      rejected: counts.rejected ?? 0,
      conflicts,
      lastSyncAt: this.meta("lastSyncAt"),
      lastError: this.meta("lastError"),
      rejectedChanges: (
        this.sql(
          "select change_id, report_id, code, message, replaced_by from outbox where state = 'rejected' order by seq desc limit 20",
        ).all() as {
          change_id: string;
          report_id: string;
          code: string | null;
          message: string | null;
          replaced_by: string | null;
        }[]
      ).map((r) => ({
        changeId: r.change_id,
        reportId: r.report_id,
        code: r.code,
        message: r.message,
        replacedBy: r.replaced_by,
      })),
    };
  }

  private async token(client: SyncClient, refresh = false): Promise<string> {
    const token = this.meta("token");
    const expiresAt = Number(this.meta("tokenExpiresAt") ?? 0);
    if (!refresh && token && expiresAt - TOKEN_MARGIN_MS > this.options.now()) return token;
    const { accessToken, expiresIn } = await client.token(
      this.meta("clientId") ?? "",
      this.meta("clientSecret") ?? "",
    );
    this.db.transaction(() => {
      this.setMeta("token", accessToken);
      this.setMeta("tokenExpiresAt", String(this.options.now() + expiresIn * 1000));
    })();
    return accessToken;
  }

  /** Runs `call` with a token; on 401 fetches a new token once and tries again. */
  private async authorized<T>(client: SyncClient, call: (token: string) => Promise<T>): Promise<T> {
    try {
      return await call(await this.token(client));
    } catch (error) {
      if (!(error instanceof CloudRequestError && error.status === 401)) throw error;
      return call(await this.token(client, true));
    }
  }

  /** Outbox entries to send: pending ones, and sent ones unacknowledged for too long. */
  private due(): OutboxRow[] {
    const staleBefore = new Date(this.options.now() - this.options.resendAfterMs).toISOString();
    return this.sql(
      "select * from outbox where state = 'pending' or (state = 'sent' and sent_at < ?) order by seq",
    ).all(staleBefore) as OutboxRow[];
  }

  /** Splits the due entries into pushes within the API's count and body-size limits. */
  private batches(rows: OutboxRow[]): OutboxRow[][] {
    const { maxBatchChanges, maxBatchBytes } = this.options;
    const batches: OutboxRow[][] = [];
    let current: OutboxRow[] = [];
    let bytes = PUSH_ENVELOPE_BYTES;
    for (const row of rows) {
      // Plus one for the comma before it.
      const size = Buffer.byteLength(JSON.stringify(toChange(row))) + 1;
      if (
        current.length >= maxBatchChanges ||
        (current.length > 0 && bytes + size > maxBatchBytes)
      ) {
        batches.push(current);
        current = [];
        bytes = PUSH_ENVELOPE_BYTES;
      }
      current.push(row);
      bytes += size;
    }
    if (current.length) batches.push(current);
    return batches;
  }

  /**
   * Pushes a batch and records each change's answer. When the cloud refuses
   * the whole request for its content, the batch is split in halves and each
   * pushed on its own, down to the change at fault, which is recorded
   * `rejected` with the cloud's code and message: no change can hold back
   * the ones around it.
   */
  private async push(client: SyncClient, batch: OutboxRow[]): Promise<PushResult> {
    let result: PushResult;
    try {
      result = await this.authorized(client, (token) => client.push(token, batch.map(toChange)));
    } catch (error) {
      if (!(error instanceof CloudRequestError && REFUSED_FOR_CONTENT.has(error.status)))
        throw error;
      if (batch.length > 1) {
        const half = Math.ceil(batch.length / 2);
        const first = await this.push(client, batch.slice(0, half));
        const second = await this.push(client, batch.slice(half));
        return {
          accepted: [...first.accepted, ...second.accepted],
          rejected: [...first.rejected, ...second.rejected],
          failed: [...first.failed, ...second.failed],
        };
      }
      const { code, message } = error;
      result = {
        accepted: [],
        rejected: [{ changeId: batch[0]!.change_id, code, message }],
        failed: [],
      };
    }
    this.recordPush(result);
    this.tryLock(); // renew the lease
    return result;
  }

  private recordPush(result: PushResult): void {
    const at = new Date(this.options.now()).toISOString();
    const sent = this.sql(
      "update outbox set state = 'sent', sent_at = ?, attempts = attempts + 1 where change_id = ? and state in ('pending', 'sent')",
    );
    const rejected = this.sql(
      "update outbox set state = 'rejected', code = ?, message = ?, acked_at = ? where change_id = ? and state in ('pending', 'sent')",
    );
    const touched = new Set<string>();
    this.db
      .transaction(() => {
        for (const id of result.accepted) sent.run(at, id);
        for (const r of result.rejected) {
          rejected.run(r.code, r.message, at, r.changeId);
          touched.add(r.changeId);
        }
        for (const changeId of touched) {
          const row = this.sql("select report_id from outbox where change_id = ?").get(changeId) as
            | { report_id: string }
            | undefined;
          if (row) this.rebuild(row.report_id);
        }
      })
      .immediate();
  }

  /** Local view = last pulled server state + this device's unacknowledged changes, in order. */
  private rebuild(reportId: string): void {
    const row = this.row(reportId);
    if (!row) return;
    const server = row.server ? (JSON.parse(row.server) as Report) : undefined;
    let state = server ? serverState(server) : emptyReportState();
    const pending = this.sql(
      "select * from outbox where report_id = ? and state in ('pending', 'sent') order by seq",
    ).all(reportId) as OutboxRow[];
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

  private applyPage(page: SyncPage): void {
    const upsertServer = this.sql(
      `insert into reports (id, fields, clocks, deleted_hlc, version, created_at, updated_at, created_by, updated_by, server)
       values (@id, '{}', '{}', null, @version, @createdAt, @updatedAt, @createdBy, @updatedBy, @server)
       on conflict (id) do update set server = @server, version = @version, created_at = @createdAt,
         updated_at = @updatedAt, created_by = @createdBy, updated_by = @updatedBy`,
    );
    const ack = this.sql(
      "update outbox set state = ?, code = ?, message = ?, acked_at = ? where change_id = ? and state in ('pending', 'sent') returning report_id",
    );
    const conflict = this.sql(
      "insert into conflicts (id, report_id, detected_at, body) values (?, ?, ?, ?) on conflict (id) do nothing",
    );
    const at = new Date(this.options.now()).toISOString();
    this.db
      .transaction(() => {
        // Round-trip time is ignored: the offset only has to be well inside
        // the cloud's 5-minute skew limit.
        this.setMeta("clockOffsetMs", String(page.serverTime - this.options.now()));
        const touched = new Set<string>();
        for (const report of page.reports) {
          upsertServer.run({ ...report, server: JSON.stringify(report) });
          touched.add(report.id);
        }
        for (const a of page.acks) {
          const row = ack.get(a.outcome, a.code ?? null, a.message ?? null, at, a.changeId) as
            | { report_id: string }
            | undefined;
          if (row && a.outcome === "rejected") touched.add(row.report_id);
        }
        for (const c of page.conflicts)
          conflict.run(c.id, c.reportId, c.detectedAt, JSON.stringify(c));
        for (const id of touched) this.rebuild(id);
        this.setMeta("cursor", page.cursor);
        // Advance the clock past the server's, so a slow device clock catches up.
        this.setMeta(
          "hlc",
          formatHlc(
            receiveHlc(this.clock(), { wall: page.serverTime, counter: 0 }, this.wallNow()),
          ),
        );
        this.restampSkewed();
      })
      .immediate();
  }

  /**
   * Changes the cloud refused as stamped too far in the future were written
   * while this device's clock ran fast. They are not lost: each is queued
   * again as a new change with the same edit, stamped from the clock as now
   * corrected by the cloud's time. The clock restarts just past every stamp
   * the cloud did accept, so it never goes back on anything it sent.
   */
  private restampSkewed(): void {
    const skewed = this.sql(
      "select * from outbox where state = 'rejected' and code = 'clock_skew' and replaced_by is null order by seq",
    ).all() as OutboxRow[];
    if (skewed.length === 0) return;
    const kept = this.sql(
      "select max(hlc) as hlc from outbox where not (state = 'rejected' and code = 'clock_skew')",
    ).get() as { hlc: string | null };
    const restart = kept.hlc ? parseHlc(kept.hlc) : undefined;
    this.setMeta("hlc", formatHlc(restart ?? { wall: 0, counter: 0, node: this.deviceId() }));
    const at = new Date(this.options.now()).toISOString();
    for (const row of skewed) {
      const report = this.row(row.report_id);
      const seen = report ? Object.values(JSON.parse(report.clocks) as Record<string, string>) : [];
      const hlc = formatHlc(this.nextStamp(seen));
      const changeId = uuidv7();
      this.sql(
        `insert into outbox (change_id, report_id, op, hlc, fields, base, created_at)
         values (?, ?, ?, ?, ?, ?, ?)`,
      ).run(changeId, row.report_id, row.op, hlc, row.fields, row.base, at);
      this.sql("update outbox set replaced_by = ? where change_id = ?").run(
        changeId,
        row.change_id,
      );
      this.setMeta("hlc", hlc);
      this.rebuild(row.report_id);
    }
  }

  /**
   * Syncs in a loop until `signal` aborts: soon after each local write (from
   * this or any other process) and at least every `intervalMs`. After a
   * failed round it waits with exponential backoff and full jitter, never
   * less than the cloud's Retry-After. Failures are reported to `onRound` and
   * kept in `status().lastError`; they never end the loop.
   *
   * @example
   * const stop = new AbortController();
   * process.once("SIGTERM", () => stop.abort());
   * await agent.run({ intervalMs: 10_000, signal: stop.signal });
   */
  async run({ intervalMs, signal, onRound }: RunOptions): Promise<void> {
    let failures = 0;
    while (!signal.aborted) {
      try {
        const summary = await this.syncOnce();
        failures = 0;
        onRound?.({ ok: true, summary });
        await this.waitForWrites(intervalMs, signal);
      } catch (error) {
        const retryAfterMs =
          error instanceof CloudUnreachableError ? error.retryAfterMs : undefined;
        const retryInMs = retryDelayMs(failures++, retryAfterMs, this.options.backoff);
        onRound?.({ ok: false, error: error as Error, retryInMs });
        // No early wake-up on writes here: that would defeat the backoff.
        await sleep(retryInMs, signal);
      }
    }
  }

  private lastOutboxSeq(): number {
    return (this.sql("select coalesce(max(seq), 0) as seq from outbox").get() as { seq: number })
      .seq;
  }

  /** Resolves after `ms`, or shortly after a new outbox entry appears, or on abort. */
  private async waitForWrites(ms: number, signal: AbortSignal): Promise<void> {
    const seen = this.lastOutboxSeq();
    const deadline = Date.now() + ms;
    while (!signal.aborted && Date.now() < deadline) {
      await sleep(Math.min(WATCH_EVERY_MS, deadline - Date.now()), signal);
      if (this.lastOutboxSeq() !== seen) {
        await sleep(WRITE_DEBOUNCE_MS, signal);
        return;
      }
    }
  }

  private readonly lockOwner = crypto.randomUUID();

  /** Takes the sync lock if it is free, or held by a process that is gone. */
  private tryLock(): boolean {
    return this.db
      .transaction(() => {
        const now = this.options.now();
        const held = this.sql("select owner, pid, expires_at from sync_lock where id = 1").get() as
          | { owner: string; pid: number; expires_at: number }
          | undefined;
        if (
          held &&
          held.owner !== this.lockOwner &&
          held.expires_at > now &&
          processAlive(held.pid)
        )
          return false;
        this.sql(
          `insert into sync_lock (id, owner, pid, expires_at) values (1, ?, ?, ?)
             on conflict (id) do update set owner = excluded.owner, pid = excluded.pid, expires_at = excluded.expires_at`,
        ).run(this.lockOwner, process.pid, now + LOCK_LEASE_MS);
        return true;
      })
      .immediate();
  }

  private async lock(): Promise<void> {
    const deadline = Date.now() + this.options.lockWaitMs;
    while (!this.tryLock()) {
      if (Date.now() >= deadline)
        throw new SyncBusyError("Another sync round is running on this database.");
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  private unlock(): void {
    this.sql("delete from sync_lock where id = 1 and owner = ?").run(this.lockOwner);
  }

  /**
   * One sync round: push every due outbox entry, then pull pages until the
   * cloud has nothing more. Throws `CloudUnreachableError` when the cloud
   * cannot be reached (the changes stay queued); records the last error in
   * `status()` either way.
   */
  async syncOnce(onProgress?: (p: SyncProgress) => void): Promise<SyncSummary> {
    const client = this.client();
    await this.lock();
    try {
      return await this.round(client, onProgress);
    } finally {
      this.unlock();
    }
  }

  private async round(
    client: SyncClient,
    onProgress?: (p: SyncProgress) => void,
  ): Promise<SyncSummary> {
    const summary: SyncSummary = {
      pushed: 0,
      rejected: 0,
      failed: 0,
      pulledReports: 0,
      acks: 0,
      conflicts: 0,
    };
    try {
      const due = this.due();
      for (const batch of this.batches(due)) {
        const result = await this.push(client, batch);
        summary.pushed += result.accepted.length;
        summary.rejected += result.rejected.length;
        summary.failed += result.failed.length;
        onProgress?.({
          phase: "push",
          done: summary.pushed + summary.rejected + summary.failed,
          total: due.length,
        });
      }
      let hasMore = true;
      while (hasMore) {
        const cursor = this.meta("cursor") ?? undefined;
        const page = await this.authorized(client, (token) =>
          client.pull(token, cursor, this.options.pullPageSize),
        );
        this.applyPage(page);
        this.tryLock();
        summary.pulledReports += page.reports.length;
        summary.acks += page.acks.length;
        summary.conflicts += page.conflicts.length;
        hasMore = page.hasMore;
        onProgress?.({ phase: "pull", done: summary.pulledReports });
      }
      this.db.transaction(() => {
        this.setMeta("lastSyncAt", new Date(this.options.now()).toISOString());
        this.setMeta(
          "lastError",
          summary.failed ? `${summary.failed} change(s) not queued by the cloud; will retry` : null,
        );
      })();
      return summary;
    } catch (error) {
      this.setMeta("lastError", (error as Error).message);
      throw error;
    }
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
    signal.addEventListener("abort", done, { once: true });
  });
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}
