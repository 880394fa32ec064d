import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { formatHlc } from "../../core/hlc.ts";
import { createTestDb, dbTargets, type TestDb } from "../../test/support/db.ts";
import { seedProject } from "../../test/support/fixtures.ts";
import type { Db, Queryable } from "../adapters/db/db.ts";
import { type ApplyItem, applyChanges } from "./apply/apply-changes.ts";
import { deviceOutcomes, liveReports } from "./tallies.ts";

let wall = 1_000;
const change = (
  projectId: string,
  deviceId: string,
  reportId: string,
  op: "upsert" | "delete",
  at = ++wall,
): ApplyItem => ({
  projectId,
  deviceId,
  receivedAt: new Date().toISOString(),
  change: {
    changeId: crypto.randomUUID(),
    reportId,
    hlc: formatHlc({ wall: at, counter: 0, node: deviceId }),
    ...(op === "upsert" ? { op, fields: { n: at } } : { op }),
  },
});

/** The same counts the slow way: every row. */
async function counted(db: Queryable, projectId: string) {
  const [reports] = await db.query<{ n: number }>(
    "select count(*)::int as n from reports where project_id = $1 and deleted_hlc is null",
    [projectId],
  );
  const rows = await db.query<{ id: string; outcome: string; n: number }>(
    `select d.id, a.outcome, count(*)::int as n from devices d join audit_log a on a.actor_id = d.id
      where d.project_id = $1 group by 1, 2`,
    [projectId],
  );
  const outcomes: Record<string, Record<string, number>> = {};
  for (const r of rows) outcomes[r.id] = { ...outcomes[r.id], [r.outcome]: r.n };
  return { live: reports!.n, outcomes };
}

async function tallied(db: Queryable, projectId: string) {
  const outcomes: Record<string, Record<string, number>> = {};
  for (const [id, o] of await deviceOutcomes(db, projectId)) {
    const nonzero = Object.entries(o).filter(([, n]) => n > 0);
    if (nonzero.length > 0) outcomes[id] = Object.fromEntries(nonzero);
  }
  return { live: await liveReports(db, projectId), outcomes };
}

describe.each(dbTargets())("tallies on %s", (target) => {
  let t: TestDb;
  beforeAll(async () => {
    t = await createTestDb(target);
  });
  afterAll(() => t.drop());

  it("count live reports and each device's outcomes as every row would, read after read", async () => {
    const { project, devices } = await seedProject(t.db, 2);
    const [a, b] = devices.map((d) => d.id) as [string, string];
    const p = project.id;
    const ids = Array.from({ length: 12 }, () => crypto.randomUUID());
    const rounds: ApplyItem[][] = [
      ids.slice(0, 8).map((id) => change(p, a, id, "upsert")),
      // Edits, a delete, a write to a report already deleted (superseded).
      [
        change(p, b, ids[0]!, "upsert"),
        change(p, b, ids[1]!, "delete"),
        change(p, a, ids[2]!, "upsert"),
      ],
      [
        change(p, a, ids[1]!, "upsert"),
        change(p, b, ids[8]!, "upsert"),
        change(p, b, ids[3]!, "delete"),
      ],
      // A report deleted before it was ever written: a tombstone, never live.
      [
        change(p, a, ids[9]!, "delete"),
        change(p, b, ids[10]!, "upsert"),
        change(p, a, ids[4]!, "delete"),
      ],
      // A change that can never apply is recorded as rejected.
      [
        {
          projectId: p,
          deviceId: b,
          receivedAt: new Date().toISOString(),
          changeId: crypto.randomUUID(),
          reportId: ids[11]!,
          rejection: { code: "INVALID_CHANGE", message: "unreadable" },
        },
      ],
    ];
    expect(await tallied(t.db, p)).toEqual({ live: 0, outcomes: {} });
    for (const round of rounds) {
      for (const item of round) await applyChanges(t.db, [item]);
      const expected = await counted(t.db, p);
      // Twice: the first read moves the tallies up, the second reads from there.
      expect(await tallied(t.db, p)).toEqual(expected);
      expect(await tallied(t.db, p)).toEqual(expected);
    }
    expect(await counted(t.db, p)).toMatchObject({
      live: 7,
      outcomes: { [a]: { applied: 11, superseded: 1 }, [b]: { applied: 5, rejected: 1 } },
    });
  });

  it("count reports stored before the tallies as created, and deleted, before any tally", async () => {
    const { project, devices } = await seedProject(t.db, 1);
    const [a] = devices.map((d) => d.id) as [string];
    const ids = Array.from({ length: 5 }, () => crypto.randomUUID());
    for (const id of ids) await applyChanges(t.db, [change(project.id, a, id, "upsert")]);
    await applyChanges(t.db, [change(project.id, a, ids[0]!, "delete")]);
    // As the rows of a database migrated to 016 look.
    await t.db.query(
      `update reports set created_xid = null, deleted_xid = null where project_id = $1`,
      [project.id],
    );
    expect(await liveReports(t.db, project.id)).toBe(4);
    await applyChanges(t.db, [change(project.id, a, ids[1]!, "delete")]);
    await applyChanges(t.db, [change(project.id, a, ids[1]!, "upsert")]);
    expect(await liveReports(t.db, project.id)).toBe(3);
    expect(await liveReports(t.db, project.id)).toBe(3);
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
      expect(await liveReports(t.db, p)).toBe(2);
      expect(await liveReports(t.db, p)).toBe(2);
      expect((await deviceOutcomes(t.db, p)).get(a)?.applied).toBe(2);
      finish();
      await late;
      expect(await liveReports(t.db, p)).toBe(3);
      expect((await deviceOutcomes(t.db, p)).get(a)?.applied).toBe(3);
      expect(await liveReports(t.db, p)).toBe(3);
      expect((await deviceOutcomes(t.db, p)).get(a)?.applied).toBe(3);
    });
  },
);
