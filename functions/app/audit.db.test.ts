import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { formatHlc } from "../../core/hlc.ts";
import { RETENTION_ACTOR } from "../../core/wire-custody.ts";
import { dbTargets, type TestDb } from "../../test/support/db.ts";
import { seededDb } from "../../test/support/fixtures.ts";
import { type ApplyItem, applyChanges } from "./apply/apply-changes.ts";
import { verifyAuditChains, verifyAuditPart } from "./audit.ts";
import { eraseReport } from "./erasure.ts";

describe.each(dbTargets())("audit log on %s", (target) => {
  let t: TestDb;
  let projectId: string;
  let device: string;
  beforeAll(async () => {
    ({ t, projectId, device } = await seededDb(target));
  });
  afterAll(() => t.drop());

  let wall = 1_000;
  const upsert = (reportId: string, fields: Record<string, unknown>): ApplyItem => ({
    projectId,
    deviceId: device,
    receivedAt: new Date().toISOString(),
    change: {
      changeId: crypto.randomUUID(),
      reportId,
      op: "upsert",
      hlc: formatHlc({ wall: ++wall, counter: 0, node: device }),
      fields: fields as never,
    },
  });
  const seqsOf = async (reportId: string) =>
    await t.db.query<{ seq: number; prev_hash: string | null; hash: string }>(
      "select seq, prev_hash, hash from audit_log where report_id = $1 order by seq",
      [reportId],
    );

  it("chains each report's rows by hash and verifies", async () => {
    const r1 = crypto.randomUUID();
    const r2 = crypto.randomUUID();
    await applyChanges(t.db, [upsert(r1, { a: 1 }), upsert(r2, { a: 2 }), upsert(r1, { a: 3 })]);
    await applyChanges(t.db, [upsert(r1, { b: "x" })]);
    const rows = await seqsOf(r1);
    expect(rows).toHaveLength(3);
    expect(rows[0]!.prev_hash).toBeNull();
    expect(rows[1]!.prev_hash).toBe(rows[0]!.hash);
    expect(rows[2]!.prev_hash).toBe(rows[1]!.hash);
    expect(await verifyAuditChains(t.db, projectId)).toEqual({
      ok: true,
      checked: 4,
      signed: 0,
      unsigned: 4,
      complete: true,
      nextCursor: null,
    });
  });

  /** Every part of a verification from the start, `limit` entries (and `options`) each. */
  const inParts = async (
    limit: number,
    options: { deadline?: number; now?: () => number } = {},
  ) => {
    const parts = [];
    let cursor: string | undefined;
    do {
      const part = await verifyAuditPart(t.db, projectId, { cursor, limit, ...options });
      parts.push(part);
      cursor = part.nextCursor ?? undefined;
      expect(parts.length).toBeLessThan(1000);
    } while (cursor);
    return parts;
  };

  it("checks a project in parts that together check every entry once, chains cut anywhere", async () => {
    const r = crypto.randomUUID();
    for (let i = 0; i < 5; i++) await applyChanges(t.db, [upsert(r, { step: i })]);
    const whole = await verifyAuditChains(t.db, projectId);
    for (const limit of [1, 2, 3]) {
      const parts = await inParts(limit);
      expect(parts.map((p) => p.checked)).toEqual(
        Array.from({ length: Math.ceil(whole.checked / limit) }, (_, i) =>
          Math.min(limit, whole.checked - i * limit),
        ),
      );
      expect(parts.every((p) => p.ok)).toBe(true);
      expect(parts.map((p) => p.complete)).toEqual(parts.map((_, i) => i === parts.length - 1));
    }
  });

  it("stops a part at its deadline, after at least one entry", async () => {
    let clock = 0;
    // Each entry takes the clock one tick further: a deadline of 3 ticks ends a part after 3.
    const parts = await inParts(1_000_000, { deadline: 3, now: () => ++clock });
    expect(parts[0]!.checked).toBe(3);
    expect(parts.at(-1)!.complete).toBe(true);
    const late = await verifyAuditPart(t.db, projectId, { deadline: 0, now: () => 1 });
    expect(late).toMatchObject({ checked: 1, complete: false });
  });

  it("refuses a cursor it did not give", async () => {
    await expect(
      verifyAuditPart(t.db, projectId, { cursor: "not-a-cursor" }),
    ).rejects.toMatchObject({
      code: "validation_failed",
    });
  });

  it.each([
    ["UPDATE", "update audit_log set outcome = 'superseded'"],
    ["DELETE", "delete from audit_log"],
    ["TRUNCATE", "truncate audit_log"],
  ])("the database refuses %s on the audit log", async (_, sql) => {
    await expect(t.db.query(sql)).rejects.toThrow(/append-only/);
  });

  it("erases a value for a data-protection request and the chain still verifies", async () => {
    const r = crypto.randomUUID();
    await applyChanges(t.db, [upsert(r, { patientName: "Jane Roe", ward: 3 })]);
    const [row] = await seqsOf(r);
    await eraseReport(
      t.db,
      projectId,
      RETENTION_ACTOR,
      { reportId: r, fields: ["patientName"], reason: "data subject request" },
      Date.now,
    );
    const [stored] = await t.db.query<{ after: Record<string, unknown> }>(
      "select after from audit_log where seq = $1",
      [row!.seq],
    );
    expect(stored!.after).toEqual({ patientName: null, ward: 3 });
    expect((await verifyAuditChains(t.db, projectId)).ok).toBe(true);
    // Erasure can only null values: it cannot rewrite them.
    await expect(
      t.db.transaction(async (tx) => {
        await tx.query("select set_config('edge_sync.audit_erasure', 'on', true)");
        await tx.query(
          "update audit_log set after = jsonb_set(after, '{ward}', '4') where seq = $1",
          [row!.seq],
        );
      }),
    ).rejects.toThrow(/append-only/);
  });

  /** A report of two entries, the second then changed by `sql` (given its seq) past the guard. */
  async function tamperedChain(sql: string) {
    const r = crypto.randomUUID();
    await applyChanges(t.db, [upsert(r, { v: 1 }), upsert(r, { v: 2 })]);
    const rows = await seqsOf(r);
    await t.db.transaction(async (tx) => {
      await tx.exec("alter table audit_log disable trigger audit_log_append_only");
      await tx.query(sql, [rows[1]!.seq]);
      await tx.exec("alter table audit_log enable trigger audit_log_append_only");
    });
    return rows;
  }

  it("finds the first tampered row when the guard is bypassed", async () => {
    const rows = await tamperedChain("update audit_log set fields_applied = '{}' where seq = $1");
    expect(await verifyAuditChains(t.db, projectId)).toMatchObject({
      ok: false,
      firstBadSeq: rows[1]!.seq,
    });
    // Checked an entry at a time, the part that holds it finds it; the rest are whole.
    const parts = await inParts(1);
    expect(parts.filter((p) => !p.ok).map((p) => p.firstBadSeq)).toEqual([rows[1]!.seq]);
  });

  it("finds entries taken from a chain's end, where a part ends there too", async () => {
    const rows = await tamperedChain("delete from audit_log where seq = $1");
    const parts = await inParts(1);
    expect(parts.filter((p) => p.firstBadSeq === rows[0]!.seq)).toHaveLength(1);
    expect(parts.find((p) => p.firstBadSeq === rows[0]!.seq)?.problem).toMatch(/chain ends here/);
  });
});
