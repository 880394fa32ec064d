import { renameSync, rmSync } from "node:fs";
import Database from "better-sqlite3";
import { v7 as uuidv7 } from "uuid";
import { type Change, checkShape } from "../core/change.ts";
import { formatHlc } from "../core/hlc.ts";
import type { JsonObject } from "../core/json.ts";
import { MAX_CHANGES_PER_REQUEST, MAX_REQUEST_BYTES } from "../core/limits.ts";
import { mergeChange } from "../core/merge.ts";
import type { Conflict, Report } from "../core/wire.ts";
import { DEFAULT_BACKOFF } from "./backoff.ts";
import { CloudRequestError, SyncClient } from "./client.ts";
import { DeviceClock } from "./device-clock.ts";
import { OutboxStore, stateOf, toReport } from "./outbox-store.ts";
import { scopeForNew, scopeOfStored } from "./scopes.ts";
import { CloudSession } from "./session.ts";
import { Settings } from "./settings.ts";
import { DeviceSigner } from "./signer.ts";
import { Statements } from "./statements.ts";
import { openStore } from "./store.ts";
import { SyncLock } from "./sync-lock.ts";
import { syncLoop } from "./sync-loop.ts";
import { type SyncParts, syncRound } from "./sync-round.ts";
import {
  type AgentEvent,
  type AgentStatus,
  EdgeAgentError,
  type EdgeAgentOptions,
  type ResolvedOptions,
  type RunOptions,
  type SyncProgress,
  type SyncSummary,
} from "./types.ts";

export * from "./types.ts";

const DEFAULTS: ResolvedOptions = {
  now: Date.now,
  resendAfterMs: 10 * 60_000,
  requestTimeoutMs: 30_000,
  maxBatchChanges: MAX_CHANGES_PER_REQUEST,
  maxBatchBytes: MAX_REQUEST_BYTES,
  pullPageSize: 1000,
  lockWaitMs: 30_000,
  backoff: DEFAULT_BACKOFF,
};

/**
 * The edge agent: an offline-first store of reports in SQLite with a
 * transactional outbox, and the sync round that pushes the outbox and pulls
 * the merged state. A facade over its parts: `OutboxStore` (the tables),
 * `Settings`, `DeviceClock`, `SyncLock`, `CloudSession` and the sync round
 * and loop.
 *
 * @example
 * const agent = EdgeAgent.open("site.db");
 * const report = agent.create({ title: "Pump 3 leaking" });
 * await agent.syncOnce();
 */
export class EdgeAgent {
  private readonly options: ResolvedOptions;
  private readonly store: OutboxStore;
  private readonly settings: Settings;
  private readonly clock: DeviceClock;
  private readonly lock: SyncLock;
  private readonly signer: DeviceSigner;
  private knownDeviceId: string | undefined;
  private readonly listeners = new Set<(event: AgentEvent) => void>();

  private constructor(
    private readonly db: Database.Database,
    options: EdgeAgentOptions,
  ) {
    this.options = { ...DEFAULTS, ...options };
    const statements = new Statements(db);
    this.store = new OutboxStore(statements);
    this.settings = new Settings(statements);
    this.clock = new DeviceClock(this.settings, this.options.now, () => this.deviceId());
    this.lock = new SyncLock(statements, this.options.now);
    this.signer = new DeviceSigner(this.settings);
  }

  /** Opens or creates the agent's database file. */
  static open(path: string, options: EdgeAgentOptions = {}): EdgeAgent {
    return new EdgeAgent(openStore(path), options);
  }

  /**
   * A consistent copy of this agent's database at `file`, taken while it
   * keeps working (SQLite's online backup: writes by this or any other
   * process meanwhile are either in the copy or not, never half), checked
   * with `PRAGMA integrity_check` before it takes the name `file`.
   */
  async backup(file: string): Promise<void> {
    const partial = `${file}.partial`;
    try {
      await this.db.backup(partial);
      const copy = new Database(partial, { readonly: true });
      const check = copy.pragma("integrity_check", { simple: true });
      copy.close();
      if (check !== "ok")
        throw new EdgeAgentError("backup_failed", `The copy is damaged: ${check}.`);
      renameSync(partial, file);
    } finally {
      rmSync(partial, { force: true });
    }
  }

  close(): void {
    this.db.close();
  }

  /**
   * Stores the cloud's address and this device's credentials, learns the
   * device id from the cloud (the one command that needs the network), and
   * creates this device's signing key and registers its public part.
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
    const previous = this.settings.get("deviceId");
    if (previous && previous !== me.id) {
      throw new EdgeAgentError(
        "not_a_device",
        `This database belongs to device ${previous}; use a new --db.`,
      );
    }
    const publicKey = this.store.transaction(() => {
      this.settings.set({
        apiUrl,
        clientId,
        clientSecret,
        deviceId: me.id,
        projectId: me.project,
        scopes: JSON.stringify(me.scopes ?? []),
        token: accessToken,
        tokenExpiresAt: this.options.now() + expiresIn * 1000,
      });
      if (!this.settings.get("hlc"))
        this.clock.advance(formatHlc({ wall: 0, counter: 0, node: me.id }));
      // A new device gets a key; one initialised before keys existed stays unsigned.
      return previous ? this.signer.publicKey() : this.signer.ensure();
    });
    if (publicKey) {
      try {
        await this.signer.register(client, accessToken);
      } catch (error) {
        if (!(error instanceof CloudRequestError && error.status === 409)) throw error;
        // Another database of this device registered its key: this one can
        // never sign for it. Forget the device, so nothing is written here.
        this.store.transaction(() => this.settings.clear());
        throw new EdgeAgentError(
          "key_conflict",
          `Device ${me.id} registered a signing key from another agent database already; its changes can only be signed there. Restore that database from a backup, or ask an admin for new credentials.`,
        );
      }
    }
    return { deviceId: me.id, projectId: me.project! };
  }

  /** This device's id; it never changes once `init` has learnt it. */
  private deviceId(): string {
    this.knownDeviceId ??= this.settings.get("deviceId") ?? undefined;
    if (!this.knownDeviceId)
      throw new EdgeAgentError("not_initialized", "Run `edge-agent init` first.");
    return this.knownDeviceId;
  }

  /**
   * One local write: checked against every limit the cloud enforces before
   * anything is stored (a change in the outbox is one the cloud can take),
   * merged into the local view, and stored with its outbox entry in one
   * transaction.
   */
  private write(
    reportId: string,
    op: "create" | "upsert" | "delete",
    fields?: JsonObject,
    scopeOfNew?: string,
  ): Report {
    return this.store.transaction(() => {
      const deviceId = this.deviceId();
      const row = this.store.report(reportId);
      if (op === "create" && row)
        throw new EdgeAgentError("invalid_change", `Report ${reportId} already exists.`);
      if (op !== "create" && !row) throw new EdgeAgentError("not_found", `No report ${reportId}.`);
      const scope =
        op === "create"
          ? scopeForNew(this.scopes(), scopeOfNew)
          : scopeOfStored(this.scopes(), row!);
      const state = stateOf(row);
      if (state.deletedHlc !== null)
        throw new EdgeAgentError("report_deleted", `Report ${reportId} is deleted.`);
      const names = Object.keys(fields ?? {});
      const hlc = formatHlc(this.clock.next(names.map((f) => state.clocks[f])));
      const raw: Change =
        op === "delete"
          ? { changeId: uuidv7(), reportId, op: "delete", hlc, ...scope }
          : {
              changeId: uuidv7(),
              reportId,
              op: "upsert",
              hlc,
              fields: fields ?? {},
              // What this editor saw of each field it edits: the cloud
              // detects concurrent edits from it.
              base: Object.fromEntries(names.map((f) => [f, state.clocks[f] ?? null])),
              ...scope,
            };
      const checked = checkShape(raw);
      if (!("change" in checked)) throw new EdgeAgentError(checked.code, checked.message);
      const merged = mergeChange(state, checked.change).state;
      const at = new Date(this.options.now()).toISOString();
      this.store.storeWrite(this.signer.sign(checked.change), merged, at, deviceId);
      this.clock.advance(hlc);
      return {
        id: reportId,
        fields: merged.fields,
        clocks: merged.clocks,
        deleted: merged.deletedHlc !== null,
        version: row?.version ?? 0,
        createdAt: row?.created_at ?? at,
        updatedAt: at,
        createdBy: row ? row.created_by : deviceId,
        updatedBy: deviceId,
        ...scope,
      };
    });
  }

  /** This device's scopes as the cloud last said; none: the whole project. */
  scopes(): string[] {
    return JSON.parse(this.settings.get("scopes") ?? "[]") as string[];
  }

  /**
   * Creates a report (a new UUID unless `id` is given), in `scope` (by
   * default the device's only scope, if it has exactly one). Works offline.
   */
  create(fields: JsonObject, options: string | { id?: string; scope?: string } = {}): Report {
    const { id = crypto.randomUUID(), scope } =
      typeof options === "string" ? { id: options } : options;
    return this.written(this.write(id, "create", fields, scope));
  }

  /** Sets fields (null clears one). Works offline. */
  update(id: string, fields: JsonObject): Report {
    return this.written(this.write(id, "upsert", fields));
  }

  /** Deletes a report (a tombstone that wins over later edits). Works offline. */
  delete(id: string): Report {
    return this.written(this.write(id, "delete"));
  }

  /**
   * Calls `listener` with each local write and the end of each sync round
   * (`AgentEvent`); returns the function that stops it. A listener that
   * throws is not called again, and cannot undo what it heard about.
   *
   * @example
   * const stop = agent.subscribe((e) => {
   *   if (e.type === "written" || (e.type === "synced" && e.summary.pulledReports > 0)) redraw();
   * });
   */
  subscribe(listener: (event: AgentEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private emit(event: AgentEvent): void {
    for (const listener of this.listeners) {
      try {
        listener(event);
      } catch {
        this.listeners.delete(listener);
      }
    }
  }

  private written(report: Report): Report {
    this.emit({ type: "written", report });
    return report;
  }

  get(id: string): Report | undefined {
    const row = this.store.report(id);
    return row && !row.evicted ? toReport(row) : undefined;
  }

  /** Reports, newest first; `q` matches any string field value, case-insensitively. */
  list(q?: string): Report[] {
    return this.store.list(q);
  }

  conflicts(): Conflict[] {
    return this.store.conflicts();
  }

  status(): AgentStatus {
    return {
      deviceId: this.settings.get("deviceId"),
      apiUrl: this.settings.get("apiUrl"),
      ...this.store.counts(),
      lastSyncAt: this.settings.get("lastSyncAt"),
      lastError: this.settings.get("lastError"),
      signingKey: this.signer.thumbprint(),
      scopes: this.scopes(),
    };
  }

  private parts(): SyncParts {
    const apiUrl = this.settings.get("apiUrl");
    if (!apiUrl) throw new EdgeAgentError("not_initialized", "Run `edge-agent init` first.");
    const client = new SyncClient({ apiUrl, timeoutMs: this.options.requestTimeoutMs });
    return {
      store: this.store,
      settings: this.settings,
      clock: this.clock,
      lock: this.lock,
      signer: this.signer,
      session: new CloudSession(client, this.settings, this.options.now),
      options: this.options,
    };
  }

  /**
   * One sync round: push every due outbox entry, then pull pages until the
   * cloud has nothing more. Throws `CloudUnreachableError` when the cloud
   * cannot be reached (the changes stay queued); records the last error in
   * `status()` either way.
   */
  async syncOnce(onProgress?: (p: SyncProgress) => void): Promise<SyncSummary> {
    const parts = this.parts();
    await this.lock.take(this.options.lockWaitMs);
    let summary: SyncSummary;
    try {
      summary = await syncRound(parts, onProgress);
    } catch (error) {
      this.emit({ type: "sync_failed", error: error as Error, status: this.status() });
      throw error;
    } finally {
      this.lock.release();
    }
    this.emit({ type: "synced", summary, status: this.status() });
    return summary;
  }

  /**
   * Syncs in a loop until `signal` aborts: soon after each local write (from
   * this or any other process) and at least every `intervalMs`, backing off
   * after failures. Failures are reported to `onRound` and kept in
   * `status().lastError`; they never end the loop.
   *
   * @example
   * const stop = new AbortController();
   * process.once("SIGTERM", () => stop.abort());
   * await agent.run({ intervalMs: 10_000, signal: stop.signal });
   */
  run(options: RunOptions): Promise<void> {
    return syncLoop(
      {
        round: () => this.syncOnce(),
        lastWrite: () => this.store.lastSeq(),
        backoff: this.options.backoff,
      },
      options,
    );
  }
}
