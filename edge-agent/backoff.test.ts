import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { DEFAULT_BACKOFF, retryDelayMs } from "./backoff.ts";

describe("retryDelayMs", () => {
  it("waits a random time below base × 2^attempt, never above the cap", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 100 }),
        fc.double({ min: 0, max: 0.999999, noNaN: true }),
        (attempt, r) => {
          const delay = retryDelayMs(attempt, undefined, { ...DEFAULT_BACKOFF, random: () => r });
          expect(delay).toBeGreaterThanOrEqual(0);
          expect(delay).toBeLessThan(
            Math.min(DEFAULT_BACKOFF.capMs, DEFAULT_BACKOFF.baseMs * 2 ** attempt),
          );
        },
      ),
    );
  });

  it("spreads agents out (full jitter) rather than waking them together", () => {
    const delays = new Set(
      Array.from({ length: 50 }, () => retryDelayMs(6, undefined, DEFAULT_BACKOFF)),
    );
    expect(delays.size).toBeGreaterThan(40);
  });

  it("never waits less than the server's Retry-After", () => {
    expect(retryDelayMs(0, 30_000, { ...DEFAULT_BACKOFF, random: () => 0.5 })).toBe(30_000);
    expect(retryDelayMs(20, 1_000, { ...DEFAULT_BACKOFF, random: () => 0.5 })).toBe(150_000);
  });
});
