import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { valueDigest } from "../../../core/audit.ts";
import { formatHlc } from "../../../core/hlc.ts";
import { contentOf, newDeviceKey, privateKeyOf, signChange } from "../../../core/signature.ts";
import { createTestDb, dbTargets, type TestDb } from "../../../test/support/db.ts";
import { seedProject } from "../../../test/support/fixtures.ts";
import { nodes, type PlanNode } from "../../../test/support/plans.ts";
import { verifyAuditChains } from "../audit.ts";
import { registerDeviceKey } from "../device-keys.ts";
import { eraseReport, runRetention, setRetention } from "../erasure.ts";
import { type ApplyItem, applyChanges } from "./apply-changes.ts";
import { ERASURES_SQL, loadBatch } from "./load.ts";
import { entryOf, planBatch } from "./plan.ts";
import { writeBatch } from "./write.ts";

/*
 * A change a device wrote before an erasure can reach the database after it:
 * it waited in the queue, or in the dead-letter queue until an admin put it
 * back. The device has already erased its own copy of that change (the
 * agent nulls the erased fields of every outbox entry written before the
 * request); the cloud must not bring the value back either.
 */
describe.each(dbTargets())(
  "a change written before an erasure, applied after it (%s)",
  (target) => {
    let t: TestDb;
    let projectId: string;
    let ward: string;
    let nurse: string;
    const member = crypto.randomUUID();
    const ERASED_AT = Date.parse("2026-06-01T12:00:00Z");
    beforeAll(async () => {
      t = await createTestDb(target);
      const seeded = await seedProject(t.db);
      projectId = seeded.project.id;
      [ward, nurse] = seeded.devices.map((d) => d.id) as [string, string];
    });
    afterAll(() => t.drop());

    const upsert = (
      deviceId: string,
      reportId: string,
      wall: number,
      fields: Record<string, unknown>,
      base?: Record<string, string | null>,
    ): ApplyItem => ({
      projectId,
      deviceId,
      receivedAt: new Date(ERASED_AT + 60_000).toISOString(),
      change: {
        changeId: crypto.randomUUID(),
        reportId,
        op: "upsert",
        hlc: formatHlc({ wall, counter: 0, node: deviceId }),
        fields: fields as never,
        ...(base ? { base } : {}),
      },
    });
    /** A report with a secret in `patient`, erased at ERASED_AT. */
    const erasedReport = async () => {
      const reportId = crypto.randomUUID();
      await applyChanges(t.db, [
        upsert(ward, reportId, ERASED_AT - 60_000, { patient: "Jane Roe", ward: "B2" }),
      ]);
      await eraseReport(
        t.db,
        projectId,
        member,
        { reportId, fields: ["patient"], reason: "data subject request" },
        () => ERASED_AT,
      );
      return reportId;
    };
    /** Everything the database keeps of a report's values, as text. */
    const storedText = async (reportId: string) =>
      JSON.stringify(
        await Promise.all([
          t.db.query("select fields from reports where id = $1", [reportId]),
          t.db.query("select before, after, signed_change from audit_log where report_id = $1", [
            reportId,
          ]),
          t.db.query("select winner_value, loser_value from conflicts where report_id = $1", [
            reportId,
          ]),
        ]),
      );
    const fieldsOf = async (reportId: string) =>
      (
        await t.db.query<{ fields: unknown }>("select fields from reports where id = $1", [
          reportId,
        ])
      )[0]?.fields;

    it("applies it with the erased fields' values erased: report, audit row and chain", async () => {
      const reportId = await erasedReport();
      const late = upsert(nurse, reportId, ERASED_AT - 5_000, {
        patient: "Jane Q. Roe",
        ward: "B3",
      });
      expect(await applyChanges(t.db, [late])).toEqual([
        {
          changeId: (late as { change: { changeId: string } }).change.changeId,
          outcome: "applied",
        },
      ]);
      expect(await fieldsOf(reportId)).toEqual({ patient: null, ward: "B3" });
      expect(await storedText(reportId)).not.toContain("Jane");
      const [row] = await t.db.query<{
        fields_applied: string[];
        erased_digests: Record<string, string>;
        seed: string | null;
        salts: Record<string, string>;
      }>("select fields_applied, erased_digests, seed, salts from audit_log where change_id = $1", [
        (late as { change: { changeId: string } }).change.changeId,
      ]);
      expect([...row!.fields_applied].sort()).toEqual(["patient", "ward"]);
      expect(Object.keys(row!.erased_digests)).toEqual(["after:patient"]);
      // Only the kept values' salts stay: the erased value's digest confirms no guess.
      expect(row!.seed).toBeNull();
      expect(Object.keys(row!.salts).sort()).toEqual([
        "after:ward",
        "before:patient",
        "before:ward",
      ]);
      const digest = row!.erased_digests["after:patient"];
      expect(digest).not.toBe(valueDigest("Jane Q. Roe"));
      for (const salt of Object.values(row!.salts))
        expect(digest).not.toBe(valueDigest("Jane Q. Roe", salt));
      expect(await verifyAuditChains(t.db, projectId)).toMatchObject({ ok: true });
    });

    it("keeps no erased value in the conflict a late change loses", async () => {
      const reportId = await erasedReport();
      // A write after the erasure is a normal write...
      await applyChanges(t.db, [upsert(ward, reportId, ERASED_AT + 5_000, { patient: "Room 12" })]);
      // ...and a late one, concurrent with it (its base is the first write), loses to it.
      const first = formatHlc({ wall: ERASED_AT - 60_000, counter: 0, node: ward });
      const late = upsert(
        nurse,
        reportId,
        ERASED_AT - 5_000,
        { patient: "Jane Q. Roe" },
        {
          patient: first,
        },
      );
      const [ack] = await applyChanges(t.db, [late]);
      expect(ack!.outcome).toBe("superseded");
      // The late change's side says its value was erased; the winner's is its own.
      expect(
        await t.db.query(
          "select winner_value, winner_erased, loser_value, loser_erased from conflicts where report_id = $1",
          [reportId],
        ),
      ).toEqual([
        { winner_value: "Room 12", winner_erased: false, loser_value: null, loser_erased: true },
      ]);
      expect(await fieldsOf(reportId)).toEqual({ patient: "Room 12", ward: "B2" });
      expect(await storedText(reportId)).not.toContain("Jane");
      expect(await verifyAuditChains(t.db, projectId)).toMatchObject({ ok: true });
    });

    it("erases under locks too (the way a batch goes when its report changed after the read)", async () => {
      const reportId = await erasedReport();
      const late = [upsert(nurse, reportId, ERASED_AT - 5_000, { patient: "Jane Q. Roe" })];
      await t.db.transaction(async (tx) => {
        const entries = late.map(entryOf);
        const loaded = await loadBatch(
          tx,
          { chains: [{ projectId, reportId }], changes: entries },
          { lock: true },
        );
        await writeBatch(tx, planBatch(late, loaded, new Date().toISOString()));
      });
      expect(await fieldsOf(reportId)).toEqual({ patient: null, ward: "B2" });
      expect(await storedText(reportId)).not.toContain("Jane");
      expect(await verifyAuditChains(t.db, projectId)).toMatchObject({ ok: true });
    });

    it("keeps no erased value in the row of a late change it refuses", async () => {
      const reportId = await erasedReport();
      const refused = upsert(nurse, reportId, ERASED_AT - 5_000, { patient: "Jane Q. Roe" });
      // Signed (a row keeps the values its device signed), and its clock names
      // another device than the one that sent it: refused.
      Object.assign((refused as { change: object }).change, {
        sig: "c2lnbmF0dXJl",
        hlc: formatHlc({ wall: ERASED_AT - 5_000, counter: 0, node: ward }),
      });
      const [ack] = await applyChanges(t.db, [refused]);
      expect(ack).toMatchObject({ outcome: "rejected", code: "hlc_node_mismatch" });
      expect(await storedText(reportId)).not.toContain("Jane");
    });

    it("leaves a change written after the erasure as it is", async () => {
      const reportId = await erasedReport();
      await applyChanges(t.db, [upsert(nurse, reportId, ERASED_AT + 1, { patient: "Jane Doe" })]);
      expect(await fieldsOf(reportId)).toEqual({ patient: "Jane Doe", ward: "B2" });
    });

    it("erases every value written, at any time, to a report retention has erased", async () => {
      // A project of its own: retention runs over every project.
      const other = await seedProject(t.db);
      const [writer, late] = other.devices.map((d) => d.id) as [string, string];
      const item = (deviceId: string, change: Record<string, unknown>): ApplyItem => ({
        projectId: other.project.id,
        deviceId,
        receivedAt: new Date().toISOString(),
        change: { changeId: crypto.randomUUID(), ...change } as never,
      });
      const day = 86_400_000;
      const reportId = crypto.randomUUID();
      const hlc = (wall: number, node: string) => formatHlc({ wall, counter: 0, node });
      await applyChanges(t.db, [
        item(writer, {
          reportId,
          op: "upsert",
          hlc: hlc(ERASED_AT, writer),
          fields: { patient: "Jane Roe" },
        }),
        item(writer, { reportId, op: "delete", hlc: hlc(ERASED_AT + 1_000, writer) }),
      ]);
      await setRetention(t.db, other.project.id, 30);
      const purged = await runRetention(t.db, () => ERASED_AT + 31 * day);
      expect(purged.made.map((e) => e.reportId)).toEqual([reportId]);
      // A device offline since before the delete writes to the report weeks
      // after retention, a field retention erased and one it never saw. It
      // is signed: its row keeps the values signed (superseded, it applies none).
      const key = newDeviceKey();
      await registerDeviceKey(t.db, late, key.publicJwk);
      const change = {
        changeId: crypto.randomUUID(),
        reportId,
        op: "upsert" as const,
        hlc: hlc(ERASED_AT + 40 * day, late),
        fields: { patient: "Jane Q. Roe", diagnosis: "Jane's fracture" },
      };
      const sig = signChange(privateKeyOf(key.privateJwk), contentOf(change));
      const [ack] = await applyChanges(t.db, [item(late, { ...change, sig })]);
      expect(ack!.outcome).toBe("superseded");
      expect(await storedText(reportId)).not.toContain("Jane");
      expect(await verifyAuditChains(t.db, other.project.id)).toMatchObject({
        ok: true,
        signed: 1,
      });
    });

    it("finds a report's erasures through their index on a never-analysed database", async () => {
      const reportId = await erasedReport();
      const [row] = await t.db.query<{ "QUERY PLAN": unknown }>(
        `explain (format json) ${ERASURES_SQL.replace("$1::uuid[]", `array['${projectId}']::uuid[]`).replace("$2::uuid[]", `array['${reportId}']::uuid[]`)}`,
      );
      const raw = row!["QUERY PLAN"];
      const [top] = (typeof raw === "string" ? JSON.parse(raw) : raw) as [{ Plan: PlanNode }];
      const plan = [...nodes(top.Plan)];
      expect(plan.flatMap((n) => n["Index Name"] ?? [])).toEqual(["erasures_report"]);
      expect(plan.map((n) => n["Relation Name"])).not.toContain("erasures_pull");
      expect(plan.map((n) => n["Node Type"])).not.toContain("Seq Scan");
    });
  },
);
