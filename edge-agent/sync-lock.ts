import type { Statements } from "./statements.ts";
import { SyncBusyError } from "./types.ts";

/** A lock not renewed for this long belongs to nobody. */
const LEASE_MS = 60_000;

/**
 * At most one sync round at a time on one database, across processes: a
 * lock row with its holder's pid and a lease. A holder that was killed is
 * recognised by its pid (same machine) or by the lease running out, so a
 * `kill -9` in the middle of a round never blocks the next one.
 */
export class SyncLock {
  private readonly owner = crypto.randomUUID();

  constructor(
    private readonly statements: Statements,
    private readonly now: () => number,
  ) {}

  /** Takes the lock if it is free, or held by a process that is gone; renews it if held here. */
  tryTake(): boolean {
    return this.statements.db
      .transaction(() => {
        const now = this.now();
        const held = this.statements
          .sql("select owner, pid, expires_at from sync_lock where id = 1")
          .get() as { owner: string; pid: number; expires_at: number } | undefined;
        if (held && held.owner !== this.owner && held.expires_at > now && processAlive(held.pid))
          return false;
        this.statements
          .sql(
            `insert into sync_lock (id, owner, pid, expires_at) values (1, ?, ?, ?)
               on conflict (id) do update set owner = excluded.owner, pid = excluded.pid, expires_at = excluded.expires_at`,
          )
          .run(this.owner, process.pid, now + LEASE_MS);
        return true;
      })
      .immediate();
  }

  /** Waits up to `waitMs` for the lock. */
  async take(waitMs: number): Promise<void> {
    const deadline = Date.now() + waitMs;
    while (!this.tryTake()) {
      if (Date.now() >= deadline)
        throw new SyncBusyError("Another sync round is running on this database.");
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  release(): void {
    this.statements.sql("delete from sync_lock where id = 1 and owner = ?").run(this.owner);
  }
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}
