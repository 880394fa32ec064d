import type { RejectionCode } from "../core/change.ts";
import type { Report } from "../core/wire.ts";
import type { BackoffOptions } from "./backoff.ts";

/** A local command could not be done; `code` is stable for scripts. */
export class EdgeAgentError extends Error {
  override name = "EdgeAgentError";
  constructor(
    readonly code:
      | "not_initialized"
      | "not_found"
      | "report_deleted"
      | "not_a_device"
      | "backup_failed"
      | "key_conflict"
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
  /**
   * The RFC 7638 thumbprint of this device's public signing key, to compare
   * with the key an evidence bundle names; null for a device without one.
   */
  signingKey: string | null;
  /** The scopes this device syncs, as the cloud last said; none: the whole project. */
  scopes: string[];
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

export type ResolvedOptions = Required<EdgeAgentOptions>;

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

/**
 * What `EdgeAgent.subscribe` listeners hear, in this process: each local
 * write as it commits, and the end of each sync round (after which a view
 * reads again what it shows: `summary.pulledReports` reports came from the
 * cloud). Writes by another process on the same database show up as the
 * reports a later round pulls, not as `written`.
 */
export type AgentEvent =
  | { type: "written"; report: Report }
  | { type: "synced"; summary: SyncSummary; status: AgentStatus }
  | { type: "sync_failed"; error: Error; status: AgentStatus };
