import type { BackoffOptions } from "./backoff.ts";
import { retryDelayMs } from "./backoff.ts";
import { CloudUnreachableError } from "./client.ts";
import type { RunOptions, SyncSummary } from "./types.ts";

/** After a local write, wait this long for more before syncing them together. */
const WRITE_DEBOUNCE_MS = 200;
const WATCH_EVERY_MS = 250;

export interface LoopParts {
  round: () => Promise<SyncSummary>;
  /** The newest outbox position: it moves when any process writes. */
  lastWrite: () => number;
  backoff: BackoffOptions;
}

/**
 * Syncs in a loop until `signal` aborts: soon after each local write (from
 * this or any other process) and at least every `intervalMs`. After a
 * failed round it waits with exponential backoff and full jitter, never
 * less than the cloud's Retry-After. Failures are reported to `onRound`;
 * they never end the loop.
 */
export async function syncLoop(
  { round, lastWrite, backoff }: LoopParts,
  { intervalMs, signal, onRound }: RunOptions,
): Promise<void> {
  let failures = 0;
  while (!signal.aborted) {
    try {
      const summary = await round();
      failures = 0;
      onRound?.({ ok: true, summary });
      await waitForWrites(lastWrite, intervalMs, signal);
    } catch (error) {
      const retryAfterMs = error instanceof CloudUnreachableError ? error.retryAfterMs : undefined;
      const retryInMs = retryDelayMs(failures++, retryAfterMs, backoff);
      onRound?.({ ok: false, error: error as Error, retryInMs });
      // No early wake-up on writes here: that would defeat the backoff.
      await sleep(retryInMs, signal);
    }
  }
}

/** Resolves after `ms`, or shortly after a new outbox entry appears, or on abort. */
async function waitForWrites(
  lastWrite: () => number,
  ms: number,
  signal: AbortSignal,
): Promise<void> {
  const seen = lastWrite();
  const deadline = Date.now() + ms;
  while (!signal.aborted && Date.now() < deadline) {
    await sleep(Math.min(WATCH_EVERY_MS, deadline - Date.now()), signal);
    if (lastWrite() !== seen) {
      await sleep(WRITE_DEBOUNCE_MS, signal);
      return;
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
