import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { formatHlc } from "../../core/hlc.ts";
import { dbTargets, type TestDb } from "../../test/support/db.ts";
import { seededDb } from "../../test/support/fixtures.ts";
import { type ApplyItem, applyChanges } from "./apply-changes.ts";
import type { Db } from "./db/db.ts";
import { pull } from "./pull.ts";

describe.each(dbTargets())("pull on %s", (target) => {
  let t: TestDb;
  let projectId: string;
  let device: string;
  beforeAll(async () => {
    ({ t, projectId, device } = await seededDb(target));
  });
  afterAll(() => t.drop());

  let wall = Date.now();
  const upsert = (reportId = crypto.randomUUID()): ApplyItem => ({
    projectId,
    deviceId: device,
    receivedAt: new Date().toISOString(),
    change: {
      changeId: crypto.randomUUID(),
      reportId,
      op: "upsert",
      hlc: formatHlc({ wall: ++wall, counter: 0, node: device }),
      fields: { n: wall },
    },
  });

  /** Pulls every page from `cursor`; returns what it saw and where it ended. */
  async function pullAll(cursor: string | undefined, limit: number) {
    const reports: string[] = [];
    const acks: string[] = [];
    for (;;) {
      const page = await pull(t.db, { projectId, deviceId: device, cursor, limit });
      reports.push(...page.reports.map((r) => r.id));
      acks.push(...page.acks.map((a) => a.changeId));
      cursor = page.cursor;
      if (!page.hasMore) return { reports, acks, cursor };
    }
  }

  it("pages through every report and ack exactly once, however small the page", async () => {
    const start = (await pullAll(undefined, 1000)).cursor;
    const items = Array.from({ length: 23 }, () => upsert());
    for (let i = 0; i < items.length; i += 5) await applyChanges(t.db, items.slice(i, i + 5));
    const seen = await pullAll(start, 4);
    const ids = items.map((i) => ("change" in i ? i.change : undefined)!);
    expect(seen.reports.sort()).toEqual(ids.map((c) => c.reportId).sort());
    expect(seen.acks.sort()).toEqual(ids.map((c) => c.changeId).sort());
    // Caught up: the next pull from the final cursor is empty.
    expect(await pullAll(seen.cursor, 4)).toMatchObject({ reports: [], acks: [] });
  });

  it("refuses a cursor it did not issue", async () => {
    await expect(
      pull(t.db, { projectId, deviceId: device, cursor: "bm9wZQ", limit: 10 }),
    ).rejects.toMatchObject({
      code: "validation_failed",
    });
  });
});

// Out-of-order commits need two sessions at once: a server, not PGlite.
describe.each(dbTargets().filter((target) => target === "postgres"))(
  "pull with concurrent consumers on %s",
  (target) => {
    let t: TestDb;
    let projectId: string;
    let device: string;
    beforeAll(async () => {
      ({ t, projectId, device } = await seededDb(target));
    });
    afterAll(() => t.drop());

    it("never skips a row whose transaction commits after a later one", async () => {
      const item = (wall: number): ApplyItem => ({
        projectId,
        deviceId: device,
        receivedAt: new Date().toISOString(),
        change: {
          changeId: crypto.randomUUID(),
          reportId: crypto.randomUUID(),
          op: "upsert",
          hlc: formatHlc({ wall, counter: 0, node: device }),
          fields: { wall },
        },
      });
      let release!: () => void;
      let reached!: () => void;
      const gate = new Promise<void>((r) => {
        release = r;
      });
      const atCommit = new Promise<void>((r) => {
        reached = r;
      });
      // A consumer whose transaction has written its rows but not yet committed.
      const slowDb: Db = {
        ...t.db,
        transaction: (fn) =>
          t.db.transaction(async (tx) => {
            const result = await fn(tx);
            reached();
            await gate;
            return result;
          }),
      };
      const early = item(1_000);
      const late = item(2_000);
      const slow = applyChanges(slowDb, [early]);
      await atCommit;
      await applyChanges(t.db, [late]); // starts later, commits first

      const first = await pull(t.db, {
        projectId,
        deviceId: device,
        cursor: undefined,
        limit: 100,
      });
      release();
      await slow;
      const second = await pull(t.db, {
        projectId,
        deviceId: device,
        cursor: first.cursor,
        limit: 100,
      });

      const seen = [...first.reports, ...second.reports].map((r) => r.id);
      const reportOf = (i: ApplyItem) => ("change" in i ? i.change.reportId : "");
      expect(seen).toContain(reportOf(early));
      expect(seen).toContain(reportOf(late));
      // The later commit waits behind the open transaction rather than moving the cursor past it.
      expect(first.reports.map((r) => r.id)).not.toContain(reportOf(late));
    });
  },
);
