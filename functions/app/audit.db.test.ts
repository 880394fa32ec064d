import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { formatHlc } from "../../core/hlc.ts";
import { RETENTION_ACTOR } from "../../core/wire-custody.ts";
import { dbTargets, type TestDb } from "../../test/support/db.ts";
import { seededDb } from "../../test/support/fixtures.ts";
import { type ApplyItem, applyChanges } from "./apply/apply-changes.ts";
import { verifyAuditChains } from "./audit.ts";
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

  it("finds the first tampered row when the guard is bypassed", async () => {
    const r = crypto.randomUUID();
    await applyChanges(t.db, [upsert(r, { v: 1 }), upsert(r, { v: 2 })]);
    const rows = await seqsOf(r);
    await t.db.transaction(async (tx) => {
      await tx.exec("alter table audit_log disable trigger audit_log_append_only");
      await tx.query("update audit_log set fields_applied = '{}' where seq = $1", [rows[1]!.seq]);
      await tx.exec("alter table audit_log enable trigger audit_log_append_only");
    });
    expect(await verifyAuditChains(t.db, projectId)).toMatchObject({
      ok: false,
      firstBadSeq: rows[1]!.seq,
    });
  });
});
