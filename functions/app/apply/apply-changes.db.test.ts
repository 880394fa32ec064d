import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Change } from "../../../core/change.ts";
import { formatHlc } from "../../../core/hlc.ts";
import { createTestDb, dbTargets, type TestDb } from "../../../test/support/db.ts";
import { seededDb, seedProject } from "../../../test/support/fixtures.ts";
import type { Db, Queryable } from "../../adapters/db/db.ts";
import { verifyAuditChains } from "../audit.ts";
import { type ApplyItem, applyChanges } from "./apply-changes.ts";
import { loadBatch } from "./load.ts";
import { entryOf, planBatch } from "./plan.ts";
import { writeBatch } from "./write.ts";

describe.each(dbTargets())("applyChanges on %s", (target) => {
  let t: TestDb;
  let projectId: string;
  let alice: string;
  let bob: string;
  beforeAll(async () => {
    t = await createTestDb(target);
    const seeded = await seedProject(t.db);
    projectId = seeded.project.id;
    [alice, bob] = seeded.devices.map((d) => d.id) as [string, string];
  });
  afterAll(() => t.drop());

  const item = (deviceId: string, change: Change): ApplyItem => ({
    projectId,
    deviceId,
    receivedAt: new Date().toISOString(),
    change,
  });
  const upsert = (
    deviceId: string,
    reportId: string,
    wall: number,
    fields: Record<string, unknown>,
    base?: Record<string, string | null>,
  ) =>
    item(deviceId, {
      changeId: crypto.randomUUID(),
      reportId,
      op: "upsert",
      hlc: formatHlc({ wall, counter: 0, node: deviceId }),
      fields: fields as never,
      ...(base ? { base } : {}),
    });
  const report = async (id: string) =>
    (
      await t.db.query<{ fields: unknown; version: number; deleted_hlc: string | null }>(
        "select fields, version, deleted_hlc from reports where project_id = $1 and id = $2",
        [projectId, id],
      )
    )[0];
  const auditCount = async (changeId: string) =>
    (
      await t.db.query<{ n: number }>(
        "select count(*)::int as n from audit_log where change_id = $1",
        [changeId],
      )
    )[0]!.n;

  it("applies a batch and writes one audit row per change", async () => {
    const reportId = crypto.randomUUID();
    const batch = [
      upsert(alice, reportId, 10, { title: "Pump", severity: 3 }),
      upsert(bob, reportId, 20, { severity: 4 }),
    ];
    const acks = await applyChanges(t.db, batch);
    expect(acks.map((a) => a.outcome)).toEqual(["applied", "applied"]);
    expect(await report(reportId)).toMatchObject({
      fields: { title: "Pump", severity: 4 },
      version: 2,
    });
    for (const i of batch)
      expect(await auditCount((i as { change: Change }).change.changeId)).toBe(1);
  });

  it("applying the same batch again is a no-op that returns the recorded outcomes", async () => {
    const reportId = crypto.randomUUID();
    const batch = [
      upsert(alice, reportId, 30, { title: "x" }),
      upsert(bob, reportId, 20, { title: "older" }),
    ];
    const first = await applyChanges(t.db, batch);
    const again = await applyChanges(t.db, [...batch, batch[0]!]);
    expect(first.map((a) => a.outcome)).toEqual(["applied", "superseded"]);
    expect(again.map((a) => a.outcome)).toEqual(["applied", "superseded", "applied"]);
    expect(await report(reportId)).toMatchObject({ fields: { title: "x" }, version: 1 });
    for (const i of batch)
      expect(await auditCount((i as { change: Change }).change.changeId)).toBe(1);
  });

  it("records a change that can never apply as rejected, and applies the rest", async () => {
    const reportId = crypto.randomUUID();
    const forged = upsert(alice, reportId, 40, { title: "forged" });
    const asBob = { ...forged, deviceId: bob };
    const unreadable: ApplyItem = {
      projectId,
      deviceId: bob,
      receivedAt: new Date().toISOString(),
      changeId: crypto.randomUUID(),
      reportId,
      rejection: { code: "invalid_change", message: "does not match the schema" },
    };
    const fine = upsert(bob, reportId, 41, { title: "fine" });
    const acks = await applyChanges(t.db, [asBob, unreadable, fine]);
    expect(acks).toEqual([
      expect.objectContaining({ outcome: "rejected", code: "hlc_node_mismatch" }),
      expect.objectContaining({ outcome: "rejected", code: "invalid_change" }),
      expect.objectContaining({ outcome: "applied" }),
    ]);
    expect((await report(reportId))?.fields).toEqual({ title: "fine" });
  });

  it("stores a conflict for concurrent edits of one field", async () => {
    const reportId = crypto.randomUUID();
    const v1 = upsert(alice, reportId, 50, { title: "v1" });
    await applyChanges(t.db, [v1]);
    const seen = (v1 as { change: Change }).change.hlc;
    await applyChanges(t.db, [upsert(bob, reportId, 60, { title: "bob" }, { title: seen })]);
    const acks = await applyChanges(t.db, [
      upsert(alice, reportId, 55, { title: "alice" }, { title: seen }),
    ]);
    expect(acks[0]!.outcome).toBe("superseded");
    const rows = await t.db.query<{
      winner_value: unknown;
      loser_value: unknown;
      winner_device_id: string;
    }>("select winner_value, loser_value, winner_device_id from conflicts where report_id = $1", [
      reportId,
    ]);
    expect(rows).toEqual([{ winner_value: "bob", loser_value: "alice", winner_device_id: bob }]);
  });

  it("rolls the whole batch back when the database refuses it", async () => {
    const reportId = crypto.randomUUID();
    const unknownProject = {
      ...upsert(alice, reportId, 70, { title: "x" }),
      projectId: crypto.randomUUID(),
    };
    const good = upsert(alice, crypto.randomUUID(), 71, { title: "y" });
    await expect(applyChanges(t.db, [good, unknownProject])).rejects.toThrow();
    expect(await auditCount((good as { change: Change }).change.changeId)).toBe(0);
  });

  it("writes nothing from a read that is no longer current, and applies it again on the report as it is", async () => {
    const reportId = crypto.randomUUID();
    await applyChanges(t.db, [upsert(alice, reportId, 1_000, { a: 1 })]);
    const late = upsert(alice, reportId, 2_000, { a: 2 });
    // Read without locks, as a batch is first applied; then another consumer
    // writes the report before this batch's write.
    const read = await loadBatch(
      t.db,
      { chains: [{ projectId, reportId }], changes: [entryOf(late)] },
      { lock: false },
    );
    await applyChanges(t.db, [upsert(bob, reportId, 3_000, { b: 3 })]);
    const plan = planBatch([late], read, new Date().toISOString());
    await expect(writeBatch(t.db, plan)).rejects.toThrow(/changed since/);
    expect(await auditCount((late as { change: Change }).change.changeId)).toBe(0);
    expect((await report(reportId))!.fields).toEqual({ a: 1, b: 3 });

    expect(await applyChanges(t.db, [late])).toEqual([
      { changeId: (late as { change: Change }).change.changeId, outcome: "applied" },
    ]);
    expect(await report(reportId)).toMatchObject({ fields: { a: 2, b: 3 }, version: 3 });
    expect((await verifyAuditChains(t.db, projectId)).ok).toBe(true);
  });

  /** A change with another device's clock: refused whatever its report holds. */
  const forged = (reportId: string, wall: number) => ({
    ...upsert(alice, reportId, wall, { title: "forged" }),
    deviceId: bob,
  });
  const changeIdOf = (i: ApplyItem) => (i as { change: Change }).change.changeId;
  const chainOf = (reportId: string) =>
    t.db.query<{ prev_hash: string | null; hash: string }>(
      "select prev_hash, hash from audit_log where project_id = $1 and report_id = $2 order by seq",
      [projectId, reportId],
    );
  const headOf = async (reportId: string) =>
    (
      await t.db.query<{ chain_head: string | null; xid: string; updated_at: Date }>(
        "select chain_head, xid::text, updated_at from reports where project_id = $1 and id = $2",
        [projectId, reportId],
      )
    )[0];

  it("keeps one chain through a refusal before its report existed, its creation and refusals after, headed in the report", async () => {
    const reportId = crypto.randomUUID();
    await applyChanges(t.db, [forged(reportId, 6_000)]);
    expect(await report(reportId)).toBeUndefined();
    await applyChanges(t.db, [upsert(alice, reportId, 6_001, { title: "one" }, { title: null })]);
    const created = await headOf(reportId);
    // Refused: the chain moves on, the report stays as devices pulled it.
    expect((await applyChanges(t.db, [forged(reportId, 6_002)]))[0]!.outcome).toBe("rejected");
    const refused = await headOf(reportId);
    expect(refused!.xid).toBe(created!.xid);
    expect(refused!.updated_at).toEqual(created!.updated_at);
    expect(refused!.chain_head).not.toBe(created!.chain_head);
    await applyChanges(t.db, [upsert(alice, reportId, 6_003, { title: "two" })]);

    const chain = await chainOf(reportId);
    expect(chain).toHaveLength(4);
    expect(chain.map((row) => row.prev_hash)).toEqual([
      null,
      ...chain.slice(0, -1).map((row) => row.hash),
    ]);
    expect((await headOf(reportId))!.chain_head).toBe(chain[3]!.hash);
    expect((await verifyAuditChains(t.db, projectId)).ok).toBe(true);
  });

  it("continues the chain of a report stored without its head, as code from before migration 014 leaves it while a deployment runs", async () => {
    const [edited, refused] = [crypto.randomUUID(), crypto.randomUUID()];
    await applyChanges(t.db, [
      upsert(alice, edited, 6_500, { title: "one" }),
      upsert(alice, refused, 6_501, { title: "one" }),
    ]);
    for (const reportId of [edited, refused]) {
      const head = (await headOf(reportId))!.chain_head;
      await t.db.query("update reports set chain_head = null where project_id = $1 and id = $2", [
        projectId,
        reportId,
      ]);
      await t.db.query(
        "insert into audit_chains (project_id, report_id, head) values ($1, $2, $3)",
        [projectId, reportId, head],
      );
    }
    const acks = await applyChanges(t.db, [
      upsert(alice, edited, 6_502, { title: "two" }),
      forged(refused, 6_503),
    ]);
    expect(acks.map((a) => a.outcome)).toEqual(["applied", "rejected"]);
    for (const reportId of [edited, refused]) {
      const chain = await chainOf(reportId);
      expect(chain.map((row) => row.prev_hash)).toEqual([null, chain[0]!.hash]);
      expect((await headOf(reportId))!.chain_head).toBe(chain[1]!.hash);
      // The row a writer from before 014 would read moved on too.
      const [row] = await t.db.query<{ head: string }>(
        "select head from audit_chains where project_id = $1 and report_id = $2",
        [projectId, reportId],
      );
      expect(row!.head).toBe(chain[1]!.hash);
    }
    expect((await verifyAuditChains(t.db, projectId)).ok).toBe(true);
  });

  it("writes nothing that would fork a chain begun or moved on since the batch read it, and applies it again", async () => {
    // A refusal read while its report was not stored; the report is created
    // before the refusal's write: two first entries of one chain.
    const created = crypto.randomUUID();
    const refusal = forged(created, 7_000);
    const keys = (i: ApplyItem, reportId: string) => ({
      chains: [{ projectId, reportId }],
      changes: [entryOf(i)],
    });
    const readBefore = await loadBatch(t.db, keys(refusal, created), { lock: false });
    await applyChanges(t.db, [upsert(alice, created, 7_001, { title: "one" })]);
    await expect(
      writeBatch(t.db, planBatch([refusal], readBefore, new Date().toISOString())),
    ).rejects.toThrow(/audit_chain_start/);
    expect(await auditCount(changeIdOf(refusal))).toBe(0);

    // A report created on a read of the chain its refusals began, which
    // another refusal moved on before the write.
    const refusedFirst = crypto.randomUUID();
    await applyChanges(t.db, [forged(refusedFirst, 7_100)]);
    const creation = upsert(alice, refusedFirst, 7_101, { title: "one" });
    const readEarlier = await loadBatch(t.db, keys(creation, refusedFirst), { lock: false });
    await applyChanges(t.db, [forged(refusedFirst, 7_102)]);
    await expect(
      writeBatch(t.db, planBatch([creation], readEarlier, new Date().toISOString())),
    ).rejects.toThrow(/changed since/);
    expect(await report(refusedFirst)).toBeUndefined();

    // Each applies again on the chain as it is.
    expect((await applyChanges(t.db, [refusal]))[0]!.outcome).toBe("rejected");
    expect((await applyChanges(t.db, [creation]))[0]!.outcome).toBe("applied");
    for (const [reportId, length] of [
      [created, 2],
      [refusedFirst, 3],
    ] as const) {
      const chain = await chainOf(reportId);
      expect(chain).toHaveLength(length);
      expect(chain.filter((row) => row.prev_hash === null)).toHaveLength(1);
      expect((await headOf(reportId))!.chain_head).toBe(chain.at(-1)!.hash);
    }
    expect((await verifyAuditChains(t.db, projectId)).ok).toBe(true);
  });

  it("merges a change that names its fields as unseen into the report stored, and answers a repeated one as recorded", async () => {
    // Both batches look as if they created their report (base all null), so
    // each is first written without a read; the write finds the report.
    const reportId = crypto.randomUUID();
    const first = upsert(alice, reportId, 5_000, { a: 1 }, { a: null });
    await applyChanges(t.db, [first]);
    const added = upsert(bob, reportId, 5_001, { b: 2 }, { b: null });
    expect((await applyChanges(t.db, [added])).map((a) => a.outcome)).toEqual(["applied"]);
    expect(await report(reportId)).toMatchObject({ fields: { a: 1, b: 2 }, version: 2 });

    expect((await applyChanges(t.db, [first, added])).map((a) => a.outcome)).toEqual([
      "applied",
      "applied",
    ]);
    for (const i of [first, added])
      expect(await auditCount((i as { change: Change }).change.changeId)).toBe(1);
    expect(await report(reportId)).toMatchObject({ fields: { a: 1, b: 2 }, version: 2 });
    expect((await verifyAuditChains(t.db, projectId)).ok).toBe(true);
  });

  it("finds the stored report when a change names it in capitals", async () => {
    const reportId = crypto.randomUUID();
    await applyChanges(t.db, [upsert(alice, reportId, 4_000, { a: 1 })]);
    const acks = await applyChanges(t.db, [upsert(alice, reportId.toUpperCase(), 4_001, { b: 2 })]);
    expect(acks.map((a) => a.outcome)).toEqual(["applied"]);
    expect(await report(reportId)).toMatchObject({ fields: { a: 1, b: 2 }, version: 2 });
    expect((await verifyAuditChains(t.db, projectId)).ok).toBe(true);
  });
});

// Two sessions at once: only a server has them.
describe.each(dbTargets().filter((target) => target === "postgres"))(
  "applyChanges with racing consumers on %s",
  (target) => {
    let t: TestDb;
    let projectId: string;
    let devices: string[];
    beforeAll(async () => {
      t = await createTestDb(target);
      const seeded = await seedProject(t.db, 2);
      projectId = seeded.project.id;
      devices = seeded.devices.map((d) => d.id);
    });
    afterAll(() => t.drop());

    /** What SQS does with a failed batch: deliver it again until it applies. */
    async function untilApplied(db: Db, items: ApplyItem[]): Promise<number> {
      for (let attempt = 1; ; attempt++) {
        try {
          await applyChanges(db, items);
          return attempt;
        } catch (error) {
          if (attempt >= 20) throw error;
        }
      }
    }

    it("never loses an update or forks an audit chain when two consumers hit the same reports", async () => {
      const reports = Array.from({ length: 5 }, () => crypto.randomUUID());
      const other = t.connectAgain!();
      let wall = 5_000;
      const batch = (device: string) =>
        reports.map(
          (reportId): ApplyItem => ({
            projectId,
            deviceId: device,
            receivedAt: new Date().toISOString(),
            change: {
              changeId: crypto.randomUUID(),
              reportId,
              op: "upsert",
              hlc: formatHlc({ wall: ++wall, counter: 0, node: device }),
              fields: { [`by_${device.slice(0, 8)}`]: wall },
            },
          }),
        );
      for (let round = 0; round < 10; round++) {
        await Promise.all([
          untilApplied(t.db, batch(devices[0]!)),
          untilApplied(other, batch(devices[1]!)),
        ]);
      }
      const rows = await t.db.query<{ fields: Record<string, number>; version: number }>(
        "select fields, version from reports where id = any($1::uuid[])",
        [reports],
      );
      // Every report kept both devices' latest writes and counts all 20 changes.
      expect(rows).toHaveLength(5);
      for (const row of rows) {
        expect(Object.keys(row.fields)).toHaveLength(2);
        expect(row.version).toBe(20);
      }
      expect((await verifyAuditChains(t.db, projectId)).ok).toBe(true);
    });
  },
);

describe.each(dbTargets())("applyChanges statement count on %s", (target) => {
  let t: TestDb;
  let projectId: string;
  let device: string;
  beforeAll(async () => {
    ({ t, projectId, device } = await seededDb(target));
  });
  afterAll(() => t.drop());

  it("sends the same number of statements for 1, 10 and 100 changes, and one for new reports as the agent writes them", async () => {
    let wall = 9_000;
    const counts: number[] = [];
    for (const [size, creating] of [
      [1, false],
      [10, false],
      [100, false],
      [10, true],
    ] as const) {
      let statements = 0;
      const counted = (q: Queryable): Queryable => ({
        query: (sql, params, options) => {
          statements++;
          return q.query(sql, params, options);
        },
        exec: (sql) => q.exec(sql),
      });
      const counting: Db = {
        ...t.db,
        ...counted(t.db),
        transaction: (fn) => t.db.transaction((tx) => fn(counted(tx))),
      };
      const items = Array.from(
        { length: size },
        (): ApplyItem => ({
          projectId,
          deviceId: device,
          receivedAt: new Date().toISOString(),
          change: {
            changeId: crypto.randomUUID(),
            reportId: crypto.randomUUID(),
            op: "upsert",
            hlc: formatHlc({ wall: ++wall, counter: 0, node: device }),
            fields: { a: wall },
            // What the agent sends when it creates a report: it saw no field.
            ...(creating ? { base: { a: null } } : {}),
          },
        }),
      );
      await applyChanges(counting, items);
      counts.push(statements);
    }
    expect(counts).toEqual([2, 2, 2, 1]);
  });
});
