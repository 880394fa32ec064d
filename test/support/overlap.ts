import type { Queryable } from "../../functions/adapters/db/db.ts";

/*
 * Two transactions made to overlap on purpose, not by luck: the first holds
 * itself open at a point (`hold`) until the second is seen waiting for a
 * row lock on the server (`someoneWaitsForALock`), then goes on (`release`).
 */

/** Waits, within a bound, until a backend of this database waits for a row lock. */
export async function someoneWaitsForALock(db: Queryable): Promise<void> {
  for (let i = 0; i < 200; i++) {
    const [row] = await db.query<{ waiting: number }>(
      `select count(*)::int as waiting from pg_stat_activity
        where datname = current_database() and wait_event_type = 'Lock'`,
    );
    if (row!.waiting > 0) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error("the second transaction never waited for the first");
}

/** A point the first transaction stops at: `held` once it is there, `release()` to go on. */
export function holdPoint(): { hold(): Promise<void>; held: Promise<void>; release(): void } {
  let reached!: () => void;
  const held = new Promise<void>((resolve) => {
    reached = resolve;
  });
  let release!: () => void;
  const released = new Promise<void>((resolve) => {
    release = resolve;
  });
  return {
    hold: () => {
      reached();
      return released;
    },
    held,
    release,
  };
}
