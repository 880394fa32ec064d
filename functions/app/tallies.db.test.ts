import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { formatHlc } from "../../core/hlc.ts";
import { createTestDb, dbTargets, type TestDb } from "../../test/support/db.ts";
import { seedProject } from "../../test/support/fixtures.ts";
import type { Db, Queryable } from "../adapters/db/db.ts";
import { type ApplyItem, applyChanges } from "./apply/apply-changes.ts";
import { eraseReport } from "./erasure.ts";
import { deviceTallies, projectTally } from "./tallies.ts";

let wall = 1_000;
const change = (
  projectId: string,
  deviceId: string,
  reportId: string,
  op: "upsert" | "delete" | "stale",
): ApplyItem => ({
  projectId,
  deviceId,
  receivedAt: new Date().toISOString(),
  change: {
    changeId: crypto.randomUUID(),
    reportId,
    hlc: formatHlc({ wall: ++wall, counter: 0, node: deviceId }),
    ...(op === "delete"
      ? { op }
      : {
          op: "upsert",
          fields: { n: wall },
          // Its device saw an older value of n than the one stored: a conflict.
          ...(op === "stale" && {
            base: { n: formatHlc({ wall: 1, counter: 0, node: deviceId }) },
          }),
        }),
  },
});

/** The same counts the slow way: every row. */
async function counted(db: Queryable, projectId: string) {
  const [project] = await db.query<{ live: number; conflicts: number }>(
    `select (select count(*)::int from reports where project_id = $1 and deleted_hlc is null) as live,
            (select count(*)::int from conflicts where project_id = $1) as conflicts`,
    [projectId],
  );
  const rows = await db.query<{ id: string; outcome: string; n: number }>(
    `select d.id, a.outcome, count(*)::int as n from devices d join audit_log a on a.actor_id = d.id
      where d.project_id = $1 group by 1, 2
     union all
     select d.id, 'conflicts', count(*)::int from devices d join conflicts c
         on c.winner_device_id = d.id::text or c.loser_device_id = d.id::text
      where d.project_id = $1 group by 1`,
    [projectId],
  );
  const devices: Record<string, Record<string, number>> = {};
  for (const r of rows) devices[r.id] = { ...devices[r.id], [r.outcome]: r.n };
  return { ...project!, devices };
}

async function tallied(db: Queryable, projectId: string) {
  const devices: Record<string, Record<string, number>> = {};
  for (const [id, counts] of await deviceTallies(db, projectId)) {
    const nonzero = Object.entries(counts).filter(([, n]) => n > 0);
    if (nonzero.length > 0) devices[id] = Object.fromEntries(nonzero);
  }
  return { ...(await projectTally(db, projectId)), devices };
}

describe.each(dbTargets())("tallies on %s", (target) => {
  let t: TestDb;
  beforeAll(async () => {
    t = await createTestDb(target);
  });
  afterAll(() => t.drop());

  it("count live reports, conflicts and each device's outcomes and conflicts as every row would, read after read", async () => {
    const { project, devices } = await seedProject(t.db, 2);
    const [a, b] = devices.map((d) => d.id) as [string, string];
    const p = project.id;
    const ids = Array.from({ length: 12 }, () => crypto.randomUUID());
    const apply =
      (...items: ApplyItem[]) =>
      async () => {
        for (const item of items) await applyChanges(t.db, [item]);
      };
    const rounds = [
      apply(...ids.slice(0, 8).map((id) => change(p, a, id, "upsert"))),
      // Edits (one of them a conflict), a delete, a write to a report already deleted (superseded).
      apply(
        change(p, b, ids[0]!, "stale"),
        change(p, b, ids[1]!, "delete"),
        change(p, a, ids[2]!, "upsert"),
        change(p, a, ids[1]!, "upsert"),
      ),
      apply(
        change(p, b, ids[8]!, "upsert"),
        change(p, b, ids[3]!, "delete"),
        change(p, a, ids[0]!, "stale"),
      ),
      // A report deleted before it was ever written: a tombstone, never live.
      apply(
        change(p, a, ids[9]!, "delete"),
        change(p, b, ids[10]!, "upsert"),
        change(p, a, ids[4]!, "delete"),
      ),
      // A change that can never apply is recorded as rejected.
      apply({
        projectId: p,
        deviceId: b,
        receivedAt: new Date().toISOString(),
        changeId: crypto.randomUUID(),
        reportId: ids[11]!,
        rejection: { code: "INVALID_CHANGE", message: "unreadable" },
      }),
      // An erasure sends the report's conflicts again (their xid moves): not new ones.
      () =>
        eraseReport(
          t.db,
          p,
          crypto.randomUUID(),
          { reportId: ids[0]!, reason: "request" },
          Date.now,
        ),
    ];
    expect(await tallied(t.db, p)).toEqual({ live: 0, conflicts: 0, devices: {} });
    for (const round of rounds) {
      await round();
      const expected = await counted(t.db, p);
      // Twice: the first read moves the tallies up, the second reads from there.
      expect(await tallied(t.db, p)).toEqual(expected);
      expect(await tallied(t.db, p)).toEqual(expected);
    }
    expect(await counted(t.db, p)).toEqual({
      live: 7,
      conflicts: 2,
      devices: {
        [a]: { applied: 12, superseded: 1, conflicts: 2 },
        [b]: { applied: 5, rejected: 1, conflicts: 2 },
      },
    });
  });

  it("count rows stored before the tallies as created, and deleted, before any tally", async () => {
    const { project, devices } = await seedProject(t.db, 2);
    const [a, b] = devices.map((d) => d.id) as [string, string];
    const p = project.id;
    const ids = Array.from({ length: 5 }, () => crypto.randomUUID());
    for (const id of ids) await applyChanges(t.db, [change(p, a, id, "upsert")]);
    await applyChanges(t.db, [change(p, a, ids[0]!, "delete"), change(p, b, ids[2]!, "stale")]);
    // As the rows of a database migrated to 016 look.
    await t.db.query(
      "update reports set created_xid = null, deleted_xid = null where project_id = $1",
      [p],
    );
    await t.db.query("update conflicts set created_xid = null where project_id = $1", [p]);
    expect(await projectTally(t.db, p)).toEqual({ live: 4, conflicts: 1 });
    await applyChanges(t.db, [change(p, a, ids[1]!, "delete")]);
    await applyChanges(t.db, [change(p, a, ids[1]!, "upsert"), change(p, b, ids[3]!, "stale")]);
    expect(await projectTally(t.db, p)).toEqual({ live: 3, conflicts: 2 });
    expect(await projectTally(t.db, p)).toEqual({ live: 3, conflicts: 2 });
  });
});

// A transaction still open under the tally's bound: only a server has two sessions.
describe.each(dbTargets().filter((target) => target === "postgres"))(
  "tallies with a transaction in flight on %s",
  (target) => {
    let t: TestDb;
    beforeAll(async () => {
      t = await createTestDb(target);
    });
    afterAll(() => t.drop());

    it("count what a transaction that began before a read commits after it", async () => {
      const { project, devices } = await seedProject(t.db, 1);
      const [a] = devices.map((d) => d.id) as [string];
      const p = project.id;
      await applyChanges(t.db, [change(p, a, crypto.randomUUID(), "upsert")]);
      const other = t.connectAgain!();
      let opened!: () => void;
      const open = new Promise<void>((resolve) => {
        opened = resolve;
      });
      let finish!: () => void;
      const finished = new Promise<void>((resolve) => {
        finish = resolve;
      });
      // Takes its xid now, below everything committed after it; writes and
      // commits only when told.
      const late = other.transaction(async (tx) => {
        await tx.query("select pg_current_xact_id()");
        opened();
        await finished;
        // The batch's write, inside this transaction (it retries in one of its own).
        const inside: Db = {
          ...tx,
          kind: "postgres",
          transaction: (fn) => fn(tx),
          close: async () => {},
        };
        await applyChanges(inside, [change(p, a, crypto.randomUUID(), "upsert")]);
      });
      await open;
      await applyChanges(t.db, [change(p, a, crypto.randomUUID(), "upsert")]);
      expect((await projectTally(t.db, p)).live).toBe(2);
      expect((await projectTally(t.db, p)).live).toBe(2);
      expect((await deviceTallies(t.db, p)).get(a)?.applied).toBe(2);
      finish();
      await late;
      expect((await projectTally(t.db, p)).live).toBe(3);
      expect((await deviceTallies(t.db, p)).get(a)?.applied).toBe(3);
      expect((await projectTally(t.db, p)).live).toBe(3);
      expect((await deviceTallies(t.db, p)).get(a)?.applied).toBe(3);
    });

    it("stay exact with reads and writes running at once", async () => {
      const { project, devices } = await seedProject(t.db, 4);
      const ids = devices.map((d) => d.id);
      const p = project.id;
      const readers = [t.connectAgain!(), t.connectAgain!()];
      const pool = Array.from({ length: 20 }, () => crypto.randomUUID());
      for (let round = 0; round < 8; round++) {
        await Promise.all([
          // Each device edits a share of the reports (another each round), some with a stale base.
          ...ids.map((d, i) =>
            applyChanges(
              t.db,
              pool
                .filter((_, k) => (k + round) % ids.length === i)
                .map((r, k) => change(p, d, r, (round + k) % 3 === 0 ? "stale" : "upsert")),
            ),
          ),
          ...readers.flatMap((db) => [deviceTallies(db, p), projectTally(db, p)]),
        ]);
      }
      const expected = await counted(t.db, p);
      expect(expected.live).toBe(20);
      expect(expected.conflicts).toBeGreaterThan(0);
      expect(await tallied(readers[0]!, p)).toEqual(expected);
    });
  },
);
