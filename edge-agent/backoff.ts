/** Resolved retry policy of the sync loop. */
export interface BackoffOptions {
  baseMs: number;
  capMs: number;
  /** Random number in [0, 1); injectable for tests. */
  random?: () => number;
}

export const DEFAULT_BACKOFF: BackoffOptions = { baseMs: 1_000, capMs: 5 * 60_000 };

/**
 * Exponential backoff with full jitter (a uniformly random wait between 0
 * and min(cap, base × 2^attempt)), so agents that lost the cloud together
 * do not all come back at the same instant. A server's Retry-After is a
 * floor: the wait is never shorter than it asked.
 *
 * @param attempt failures in a row so far, from 0
 * @example retryDelayMs(3, undefined, DEFAULT_BACKOFF) // somewhere in [0, 8 s)
 */
export function retryDelayMs(
  attempt: number,
  retryAfterMs: number | undefined,
  options: BackoffOptions,
): number {
  const ceiling = Math.min(options.capMs, options.baseMs * 2 ** Math.min(attempt, 30));
  const jittered = Math.floor((options.random ?? Math.random)() * ceiling);
  return Math.max(jittered, retryAfterMs ?? 0);
}
