import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { formatHlc } from "../../core/hlc.ts";
import type { JsonObject } from "../../core/json.ts";
import { createTestDb, dbTargets, type TestDb } from "../../test/support/db.ts";
import { seededDb, seedProject } from "../../test/support/fixtures.ts";
import type { Db, Queryable } from "../adapters/db/db.ts";
import { type ApplyItem, applyChanges } from "./apply/apply-changes.ts";
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
  const upsert = (reportId = crypto.randomUUID(), fields?: JsonObject): ApplyItem => ({
    projectId,
    deviceId: device,
    receivedAt: new Date().toISOString(),
    change: {
      changeId: crypto.randomUUID(),
      reportId,
      op: "upsert",
      hlc: formatHlc({ wall: ++wall, counter: 0, node: device }),
      fields: fields ?? { n: wall },
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

  it("keeps a page within its byte budget, one row at least, and still sends every report and ack once", async () => {
    const start = (await pullAll(undefined, 1000)).cursor;
    // Reports of about 1.5 KB against a budget of 1,000 bytes: each page
    // holds one report alone (the acks wait where they were), the acks last.
    const items = Array.from({ length: 4 }, () => upsert(undefined, { notes: "x".repeat(1500) }));
    await applyChanges(t.db, items);
    const changes = items.map((i) => ("change" in i ? i.change : undefined)!);
    const pages = [];
    for (let cursor = start; ; ) {
      const page = await pull(t.db, {
        projectId,
        deviceId: device,
        cursor,
        limit: 1000,
        pageBytes: 1000,
      });
      pages.push(page);
      cursor = page.cursor;
      if (!page.hasMore) break;
    }
    expect(pages.map((p) => [p.reports.length, p.acks.length])).toEqual([
      [1, 0],
      [1, 0],
      [1, 0],
      [1, 0],
      [0, 4],
    ]);
    expect(pages.flatMap((p) => p.reports.map((r) => r.id)).sort()).toEqual(
      changes.map((c) => c.reportId).sort(),
    );
    expect(pages.flatMap((p) => p.acks.map((a) => a.changeId)).sort()).toEqual(
      changes.map((c) => c.changeId).sort(),
    );
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
      // A consumer whose transaction has written its rows but not yet
      // committed (its lock-free attempt refused, it applies the batch in a
      // transaction, held open here).
      const slowDb: Db = {
        ...t.db,
        query: () => Promise.reject(new Error("refused")),
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

/**
 * The xid of the oldest running transaction, and the largest power of ten
 * whose neighbours all lie below it: rows written "by" those xids count as
 * committed for a pull.
 */
async function powerOfTenBelowXmin(db: Queryable): Promise<bigint> {
  const [{ xmin }] = (await db.query<{ xmin: string }>(
    "select pg_snapshot_xmin(pg_current_snapshot())::text as xmin",
  )) as [{ xmin: string }];
  let power = 10n;
  while (power * 10n + 1n < BigInt(xmin)) power *= 10n;
  return power;
}

describe.each(dbTargets())("pull across a power of ten in transaction ids on %s", (target) => {
  let t: TestDb;
  let projectId: string;
  let device: string;
  let other: string;
  // Rows in the numeric (xid, key) order a pull must deliver them in.
  let expected: { reports: string[]; acks: string[]; conflicts: string[] };

  beforeAll(async () => {
    t = await createTestDb(target);
    const seeded = await seedProject(t.db, 2);
    projectId = seeded.project.id;
    [device, other] = seeded.devices.map((d) => d.id) as [string, string];
    const power = await powerOfTenBelowXmin(t.db);
    // 9998, 9999, 10000, 10001 (or the same around 100, 1000…): text order
    // puts 10000 and 10001 first, numeric order last.
    const xids = [power - 2n, power - 1n, power, power + 1n].map(String);
    const reports: [string, string][] = [];
    const acks: [string, number][] = [];
    const conflicts: [string, string][] = [];
    for (const xid of xids) {
      for (let n = 0; n < 2; n++) {
        const reportId = crypto.randomUUID();
        await t.db.query(
          "insert into reports (project_id, id, fields, xid) values ($1, $2, '{}', $3::text::xid8)",
          [projectId, reportId, xid],
        );
        reports.push([xid, reportId]);
        const [{ seq }] = (await t.db.query<{ seq: number }>(
          `insert into audit_log (project_id, change_id, report_id, actor_type, actor_id, op, hlc, outcome, received_at, xid)
           values ($1, $2, $3, 'device', $4, 'upsert', $5, 'applied', now(), $6::text::xid8) returning seq`,
          [projectId, crypto.randomUUID(), reportId, device, `${xid}:${n}`, xid],
        )) as [{ seq: number }];
        acks.push([xid, seq]);
        // The device wins one conflict and loses the other at each xid.
        const [winner, loser] = n === 0 ? [device, other] : [other, device];
        const [{ id }] = (await t.db.query<{ id: string }>(
          `insert into conflicts (project_id, report_id, field, winner_change_id, winner_device_id, winner_hlc,
                                  loser_change_id, loser_device_id, loser_hlc, xid)
           values ($1, $2, 'title', gen_random_uuid(), $3, 'b', gen_random_uuid(), $4, 'a', $5::text::xid8)
           returning id`,
          [projectId, reportId, winner, loser, xid],
        )) as [{ id: string }];
        conflicts.push([xid, id]);
      }
    }
    // Numeric xid first, then the key (uuids compare as their hex text).
    const numeric = <K>(rows: [string, K][]) =>
      [...rows].sort(([xa, ka], [xb, kb]) =>
        xa === xb ? (ka < kb ? -1 : 1) : BigInt(xa) < BigInt(xb) ? -1 : 1,
      );
    expected = {
      reports: numeric(reports).map(([, id]) => id),
      acks: numeric(acks).map(([, seq]) => String(seq)),
      conflicts: numeric(conflicts).map(([, id]) => id),
    };
  });
  afterAll(() => t.drop());

  it.each([1, 2, 3, 4, 5])(
    "delivers every report, ack and conflict once, in numeric order, in pages of %i",
    async (limit) => {
      const seen = { reports: [] as string[], acks: [] as string[], conflicts: [] as string[] };
      let cursor: string | undefined;
      for (let page = 0; ; page++) {
        expect(page).toBeLessThan(50);
        const result = await pull(t.db, { projectId, deviceId: device, cursor, limit });
        seen.reports.push(...result.reports.map((r) => r.id));
        seen.conflicts.push(...result.conflicts.map((c) => c.id));
        const seqs = await t.db.query<{ seq: number }>(
          "select seq from audit_log where change_id = any($1::uuid[]) order by array_position($1::uuid[], change_id)",
          [result.acks.map((a) => a.changeId)],
        );
        seen.acks.push(...seqs.map((r) => String(r.seq)));
        cursor = result.cursor;
        if (!result.hasMore) break;
      }
      expect(seen).toEqual(expected);
    },
  );
});

// The planner's choice only means something on the server, at size.
describe.each(dbTargets().filter((target) => target === "postgres"))(
  "pull plans at 100,000 reports (%s)",
  (target) => {
    let t: TestDb;
    let projectId: string;
    let device: string;
    beforeAll(async () => {
      t = await createTestDb(target);
      const seeded = await seedProject(t.db, 2);
      projectId = seeded.project.id;
      device = seeded.devices[0]!.id;
      const other = seeded.devices[1]!.id;
      // Another project of the same size, so the project filter has to count.
      const neighbour = (await seedProject(t.db, 0)).project.id;
      for (const project of [projectId, neighbour]) {
        await t.db.query(
          `insert into reports (project_id, id, fields)
           select $1, gen_random_uuid(), jsonb_build_object('n', g) from generate_series(1, 100000) g`,
          [project],
        );
      }
      await t.db.query(
        `insert into audit_log (project_id, change_id, report_id, actor_type, actor_id, op, hlc, outcome, received_at)
         select $1, gen_random_uuid(), gen_random_uuid(), 'device', case when g % 2 = 0 then $2 else $3 end::uuid,
                'upsert', g::text, 'applied', now()
           from generate_series(1, 100000) g`,
        [projectId, device, other],
      );
      await t.db.query(
        `insert into conflicts (project_id, report_id, field, winner_change_id, winner_device_id, winner_hlc,
                                loser_change_id, loser_device_id, loser_hlc)
         select $1, gen_random_uuid(), 'title', gen_random_uuid(), case when g % 2 = 0 then $2 else $3 end,
                'b', gen_random_uuid(), case when g % 2 = 0 then $3 else $2 end, 'a'
           from generate_series(1, 20000) g`,
        [projectId, device, other],
      );
    });
    afterAll(() => t.drop());

    /** The plans of the exact statements a pull sends, from the start and from mid-way. */
    async function plans(): Promise<{ sql: string; plan: string }[]> {
      const sent: { sql: string; params: readonly unknown[] }[] = [];
      // Runs the pull's first statement (its snapshot and planner settings)
      // and records the rest, to explain them under the same settings.
      let settings = "";
      const capture: Queryable = {
        async query<R>(sql: string, params?: readonly unknown[]) {
          if (sql.includes("pg_current_snapshot")) {
            settings = sql;
            return t.db.query<R>(sql, params);
          }
          sent.push({ sql, params: params ?? [] });
          return [];
        },
        async exec() {},
      };
      const captureDb: Db = { ...t.db, ...capture, transaction: (fn) => fn(capture) };
      await pull(captureDb, { projectId, deviceId: device, cursor: undefined, limit: 500 });
      return t.db.transaction(async (tx) => {
        await tx.query(settings);
        const plans: { sql: string; plan: string }[] = [];
        for (const { sql, params } of sent) {
          const rows = await tx.query<{ "QUERY PLAN": string }>(`explain ${sql}`, params);
          plans.push({ sql, plan: rows.map((r) => r["QUERY PLAN"]).join("\n") });
        }
        return plans;
      });
    }

    it.each([
      ["without statistics", false],
      ["analysed", true],
    ])("reads each stream %s through an index, with no sort", async (_, analysed) => {
      if (analysed) await t.db.exec("analyze reports; analyze audit_log; analyze conflicts");
      const sent = await plans();
      const of = (pattern: RegExp) => sent.find(({ sql }) => pattern.test(sql))!.plan;
      const device = of(/from devices d/);
      const reports = of(/from reports\s+where project_id/);
      const acks = of(/from audit_log/);
      const won = of(/winner_device_id = \$2/);
      const lost = of(/loser_device_id = \$2/);
      for (const plan of [reports, acks, won, lost]) {
        expect(plan).not.toMatch(/Sort|Seq Scan|Bitmap/);
      }
      // The device's scopes: its row by primary key.
      expect(device).toMatch(/Index Scan using devices_pkey/);
      expect(reports).toMatch(/Index Scan using reports_pull/);
      expect(acks).toMatch(/Index Scan using audit_actor_pull/);
      expect(won).toMatch(/Index Scan using conflicts_winner_pull/);
      expect(lost).toMatch(/Index Scan using conflicts_loser_pull/);
    });
  },
);
