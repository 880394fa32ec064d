import { describe, expect, it } from "vitest";
import { hashAuditRecord, saltOf, valueDigest } from "../../../core/audit.ts";
import type { Change } from "../../../core/change.ts";
import { formatHlc } from "../../../core/hlc.ts";
import { type ApplyItem, createsOnly, entryOf, type LoadedBatch, planBatch } from "./plan.ts";
import { prepareChange } from "./prepare.ts";

const project = "8a9b0c1d-2e3f-4a5b-8c6d-7e8f9a0b1c2d";
const device = "5d6e7f80-1a2b-4c3d-9e8f-0a1b2c3d4e5f";
const report = "0c9d8e7f-6a5b-4c3d-8e2f-1a0b9c8d7e6f";
const appliedAt = "2026-12-02T12:00:00.000Z";
const nothing: LoadedBatch = { reports: [], heads: [], applied: [] };
let wall = 1_795_352_400_000;

const upsert = (fields: Record<string, unknown>, patch: Partial<ApplyItem> = {}): ApplyItem => ({
  projectId: project,
  deviceId: device,
  receivedAt: "2026-12-02T11:59:59.5Z",
  change: {
    changeId: crypto.randomUUID(),
    reportId: report,
    op: "upsert",
    hlc: formatHlc({ wall: ++wall, counter: 0, node: device }),
    fields: fields as never,
  },
  ...patch,
});

const changeOf = (item: ApplyItem) => (item as { change: Change }).change;

// The plan is pure: these run without a database.
describe("planBatch", () => {
  it("creates a report, answers applied, and hashes its first audit row with no predecessor", () => {
    const item = upsert({ title: "Pump 3" });
    const plan = planBatch([item], nothing, appliedAt);
    expect(plan.acks).toEqual([
      { changeId: (item as { change: { changeId: string } }).change.changeId, outcome: "applied" },
    ]);
    expect(plan.reports).toMatchObject([
      {
        id: report,
        scope: null,
        xid: null,
        version: 1,
        createdBy: device,
        state: { fields: { title: "Pump 3" } },
      },
    ]);
    const [row] = plan.audit;
    expect(row).toMatchObject({
      prevHash: null,
      outcome: "applied",
      after: { title: "Pump 3" },
      receivedAt: "2026-12-02T11:59:59.500Z",
      appliedAt,
    });
    expect(row!.hash).toBe(hashAuditRecord(row!));
  });

  it("chains the rows of one report in order, from the head the database holds", () => {
    const loaded: LoadedBatch = {
      ...nothing,
      heads: [{ projectId: project, reportId: report, hash: "f".repeat(64) }],
    };
    const plan = planBatch([upsert({ a: 1 }), upsert({ a: 2 })], loaded, appliedAt);
    expect(plan.audit.map((r) => r.prevHash)).toEqual(["f".repeat(64), plan.audit[0]!.hash]);
    expect(plan.reports).toHaveLength(1);
    expect(plan.reports[0]!.state.fields).toEqual({ a: 2 });
  });

  it("answers a change already in the log with its recorded outcome and plans nothing for it", () => {
    const item = upsert({ a: 1 });
    const changeId = (item as { change: { changeId: string } }).change.changeId;
    const loaded: LoadedBatch = {
      ...nothing,
      applied: [{ projectId: project, changeId, outcome: "partial" }],
    };
    const plan = planBatch([item, item], loaded, appliedAt);
    expect(plan.acks).toEqual([
      { changeId, outcome: "partial" },
      { changeId, outcome: "partial" },
    ]);
    expect(plan.audit).toEqual([]);
    expect(plan.reports).toEqual([]);
  });

  it("plans a change repeated in one batch once", () => {
    const item = upsert({ a: 1 });
    const plan = planBatch([item, item], nothing, appliedAt);
    expect(plan.audit).toHaveLength(1);
    expect(plan.acks[0]).toEqual(plan.acks[1]);
  });

  it("records a change stamped with another device's clock as rejected", () => {
    const item = upsert({ a: 1 });
    const forged = {
      ...item,
      change: {
        ...(item as { change: object }).change,
        hlc: formatHlc({ wall, counter: 0, node: "x" }),
      },
    } as ApplyItem;
    const plan = planBatch([forged], nothing, appliedAt);
    expect(plan.acks[0]).toMatchObject({ outcome: "rejected", code: "hlc_node_mismatch" });
    expect(plan.audit[0]).toMatchObject({ outcome: "rejected", code: "hlc_node_mismatch" });
    expect(plan.reports).toEqual([]);
  });

  it("gives the same plan for the same inputs, its seeds among them", () => {
    const items = [upsert({ a: 1 }), upsert({ b: [1, 2] }), upsert({ a: null })];
    const prepared = new Map(items.map((i) => [changeOf(i), prepareChange(changeOf(i))]));
    const plan = planBatch(items, nothing, appliedAt, prepared);
    expect(planBatch(items, nothing, appliedAt, prepared)).toEqual(plan);
    expect(plan.audit.map((a) => a.seed)).toEqual(
      items.map((i) => prepared.get(changeOf(i))!.seed),
    );
  });

  it("salts each row's values with a seed of its own: the same value, in two rows, gets two digests", () => {
    const items = [upsert({ pain: 6 }), upsert({ pain: 6 }, { deviceId: device })];
    const plan = planBatch(items, nothing, appliedAt);
    const [first, second] = plan.audit;
    expect(first!.seed).toMatch(/^[A-Za-z0-9_-]{22}$/);
    expect(second!.seed).not.toBe(first!.seed);
    const digestOf = (row: typeof first) => valueDigest(6, saltOf(row!, "after:pain"));
    expect(digestOf(first)).not.toBe(digestOf(second));
    expect(digestOf(first)).not.toBe(valueDigest(6));
    // Each hash covers its own salted digests.
    for (const row of plan.audit) expect(hashAuditRecord(row)).toBe(row.hash);
  });
});

describe("createsOnly", () => {
  const change = (item: ApplyItem) => (item as { change: Record<string, unknown> }).change;
  const withChange = (item: ApplyItem, patch: Record<string, unknown>): ApplyItem =>
    ({ ...item, change: { ...change(item), ...patch } }) as ApplyItem;
  const created = (reportId: string) =>
    withChange(upsert({ title: "t", severity: 2 }), {
      reportId,
      base: { title: null, severity: null },
    });
  const other = "7b1c2d3e-4f5a-4b6c-8d7e-9f0a1b2c3d4e";
  const is = (...items: ApplyItem[]) => createsOnly(items.map(entryOf));

  it("holds when each report's first change says its device saw none of its fields, as the agent's first write does", () => {
    const first = created(report);
    const next = withChange(upsert({ title: "t2" }), { base: { title: change(first).hlc } });
    expect(is(first, next, created(other))).toBe(true);
  });

  it("does not hold when any report's first change saw a field, names none, leaves one out, or is not an upsert", () => {
    const seen = withChange(created(other), {
      base: { title: null, severity: formatHlc({ wall: 1, counter: 0, node: device }) },
    });
    expect(is(created(report), seen)).toBe(false);
    expect(is(created(report), withChange(upsert({ title: "no base" }), { reportId: other }))).toBe(
      false,
    );
    expect(is(withChange(created(report), { base: { title: null } }))).toBe(false);
    expect(
      is(created(report), {
        ...created(other),
        change: {
          changeId: crypto.randomUUID(),
          reportId: other,
          op: "delete",
          hlc: change(created(other)).hlc,
        },
      } as ApplyItem),
    ).toBe(false);
    expect(
      is(created(report), {
        projectId: project,
        deviceId: device,
        receivedAt: appliedAt,
        changeId: crypto.randomUUID(),
        reportId: other,
        rejection: { code: "invalid_change", message: "unreadable" },
      }),
    ).toBe(false);
  });
});
