import { v7 as uuidv7 } from "uuid";
import { formatHlc, parseHlc } from "../core/hlc.ts";
import type { SyncPage } from "../core/wire.ts";
import { CloudRequestError, type PushResult } from "./client.ts";
import type { DeviceClock } from "./device-clock.ts";
import { type OutboxEntry, type OutboxStore, toChange } from "./outbox-store.ts";
import type { CloudSession } from "./session.ts";
import type { Settings } from "./settings.ts";
import type { DeviceSigner } from "./signer.ts";
import type { SyncLock } from "./sync-lock.ts";
import type { ResolvedOptions, SyncProgress, SyncSummary } from "./types.ts";

/** The envelope of a push body around its changes: `{"changes":[` … `]}`. */
const PUSH_ENVELOPE_BYTES = '{"changes":[]}'.length;
/**
 * Statuses with which the cloud refuses a whole push for something in it
 * (a limit, a shape). Retrying the same body cannot help; splitting it finds
 * the change at fault.
 */
const REFUSED_FOR_CONTENT = new Set([400, 413, 415]);

export interface SyncParts {
  store: OutboxStore;
  settings: Settings;
  clock: DeviceClock;
  lock: SyncLock;
  signer: DeviceSigner;
  session: CloudSession;
  options: ResolvedOptions;
}

/**
 * One sync round: push every due outbox entry, then pull pages until the
 * cloud has nothing more. Records the last error in the settings either way.
 */
export async function syncRound(
  parts: SyncParts,
  onProgress?: (p: SyncProgress) => void,
): Promise<SyncSummary> {
  const { settings, options } = parts;
  const summary: SyncSummary = {
    pushed: 0,
    rejected: 0,
    failed: 0,
    pulledReports: 0,
    acks: 0,
    conflicts: 0,
  };
  try {
    // The cloud checks pushed changes against the key: it must hold it first.
    await parts.session.authorized((client, token) => parts.signer.register(client, token));
    await pushDue(parts, summary, onProgress);
    await pullAll(parts, summary, onProgress);
    settings.set({
      lastSyncAt: new Date(options.now()).toISOString(),
      lastError: summary.failed
        ? `${summary.failed} change(s) not queued by the cloud; will retry`
        : null,
    });
    return summary;
  } catch (error) {
    settings.set({ lastError: (error as Error).message });
    throw error;
  }
}

async function pushDue(
  parts: SyncParts,
  summary: SyncSummary,
  onProgress?: (p: SyncProgress) => void,
): Promise<void> {
  const { store, options } = parts;
  const staleBefore = new Date(options.now() - options.resendAfterMs).toISOString();
  const due = store.due(staleBefore);
  for (const batch of batchesOf(due, options)) {
    const result = await push(parts, batch);
    summary.pushed += result.accepted.length;
    summary.rejected += result.rejected.length;
    summary.failed += result.failed.length;
    onProgress?.({
      phase: "push",
      done: summary.pushed + summary.rejected + summary.failed,
      total: due.length,
    });
  }
}

/** Splits the due entries into pushes within the API's count and body-size limits. */
function batchesOf(
  entries: OutboxEntry[],
  { maxBatchChanges, maxBatchBytes }: ResolvedOptions,
): OutboxEntry[][] {
  const batches: OutboxEntry[][] = [];
  let current: OutboxEntry[] = [];
  let bytes = PUSH_ENVELOPE_BYTES;
  for (const entry of entries) {
    // Plus one for the comma before it.
    const size = Buffer.byteLength(JSON.stringify(toChange(entry))) + 1;
    if (current.length >= maxBatchChanges || (current.length > 0 && bytes + size > maxBatchBytes)) {
      batches.push(current);
      current = [];
      bytes = PUSH_ENVELOPE_BYTES;
    }
    current.push(entry);
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
async function push(parts: SyncParts, batch: OutboxEntry[]): Promise<PushResult> {
  let result: PushResult;
  try {
    result = await parts.session.authorized((client, token) =>
      client.push(token, batch.map(toChange)),
    );
  } catch (error) {
    if (!(error instanceof CloudRequestError && REFUSED_FOR_CONTENT.has(error.status))) throw error;
    if (batch.length > 1) {
      const half = Math.ceil(batch.length / 2);
      const first = await push(parts, batch.slice(0, half));
      const second = await push(parts, batch.slice(half));
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
  parts.store.recordPush(result, new Date(parts.options.now()).toISOString());
  parts.lock.tryTake(); // renew the lease
  return result;
}

async function pullAll(
  parts: SyncParts,
  summary: SyncSummary,
  onProgress?: (p: SyncProgress) => void,
): Promise<void> {
  const { settings, options, session } = parts;
  const fetchPage = (cursor: string | undefined) =>
    session.authorized((client, token) => client.pull(token, cursor, options.pullPageSize));
  let next = fetchPage(settings.get("cursor") ?? undefined);
  for (;;) {
    const page = await next;
    // The following page is asked for before this one is written, so the
    // cloud reads it while SQLite writes. Its cursor is stored only with the
    // page it follows: a round cut short anywhere resumes after the last
    // page written, never skips one.
    const following = page.hasMore ? fetchPage(page.cursor) : undefined;
    if (following) {
      following.catch(() => undefined); // awaited below, unless this page fails
      await new Promise((sent) => setImmediate(sent));
    }
    applyPage(parts, page);
    // Erased values linger in the WAL until it is written back and emptied.
    if (page.erasures?.length) parts.store.checkpoint();
    parts.lock.tryTake();
    summary.pulledReports += page.reports.length;
    summary.acks += page.acks.length;
    summary.conflicts += page.conflicts.length;
    onProgress?.({ phase: "pull", done: summary.pulledReports });
    if (!following) return;
    next = following;
  }
}

/** Applies one pulled page in one transaction: reports, outcomes, conflicts, cursor, clock. */
function applyPage(parts: SyncParts, page: SyncPage): void {
  const { store, settings, clock, options } = parts;
  const at = new Date(options.now()).toISOString();
  store.transactionRecoverable(() => {
    clock.observeServerTime(page.serverTime);
    // A pulled report is stored as its local view; those this device still
    // has changes to, and those whose change the cloud rejected, are rebuilt.
    for (const report of page.reports) store.storeServerReport(report);
    const rebuild = new Set<string>();
    for (const ack of page.acks) {
      const rejectedReport = store.acknowledge(ack, at);
      if (rejectedReport) rebuild.add(rejectedReport);
    }
    if (page.reports.length) {
      const unacked = store.withUnacked();
      for (const { id } of page.reports) if (unacked.has(id)) rebuild.add(id);
    }
    for (const conflict of page.conflicts) store.storeConflict(conflict);
    for (const erasure of page.erasures ?? []) {
      store.removal.erase(erasure, (change) => parts.signer.sign(change));
      rebuild.add(erasure.reportId);
    }
    for (const id of rebuild) store.rebuild(id);
    // Reports that left this device's scopes go once its changes to them
    // are acknowledged (by this page or a later one).
    if (page.scopes) settings.set({ scopes: JSON.stringify(page.scopes) });
    store.removal.evict(page.evict ?? []);
    settings.set({ cursor: page.cursor });
    restampSkewed(parts, at);
  });
}

/**
 * Changes the cloud refused as stamped too far in the future were written
 * while this device's clock ran fast. They are not lost: each is queued
 * again as a new change with the same edit, stamped from the clock as now
 * corrected by the cloud's time. The clock restarts just past every stamp
 * the cloud did accept, so it never goes back on anything it sent.
 */
function restampSkewed({ store, clock, signer }: SyncParts, at: string): void {
  const skewed = store.skewed();
  if (skewed.length === 0) return;
  const kept = store.highestKeptHlc();
  const restart = kept ? parseHlc(kept) : undefined;
  clock.advance(formatHlc(restart ?? { ...clock.current(), wall: 0, counter: 0 }));
  for (const entry of skewed) {
    const report = store.report(entry.report_id);
    const seen = report ? Object.values(JSON.parse(report.clocks) as Record<string, string>) : [];
    const hlc = formatHlc(clock.next(seen));
    store.replace(entry, signer.sign({ ...toChange(entry), changeId: uuidv7(), hlc }), at);
    clock.advance(hlc);
    store.rebuild(entry.report_id);
  }
}
