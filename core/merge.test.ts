import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { Change } from "./change.ts";
import { formatHlc } from "./hlc.ts";
import { emptyReportState, mergeChange, type ReportState } from "./merge.ts";
import { changeSets, DEVICES, deliveries } from "./testing/arbitraries.ts";
import { referenceState } from "./testing/reference.ts";

const [alice, bob] = DEVICES;
const reportId = "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa";
const hlc = (wall: number, node: string, counter = 0) => formatHlc({ wall, counter, node });
let n = 0;
const upsert = (
  stamp: string,
  fields: Record<string, unknown>,
  base?: Record<string, string | null>,
): Change => ({
  changeId: `0193a1b2-0000-7000-8000-${String(++n).padStart(12, "0")}`,
  reportId,
  op: "upsert",
  hlc: stamp,
  fields: fields as never,
  ...(base ? { base } : {}),
});
const remove = (stamp: string): Change => ({
  changeId: `0193a1b2-0000-7000-8000-${String(++n).padStart(12, "0")}`,
  reportId,
  op: "delete",
  hlc: stamp,
});

/** Final state per report after merging changes in the given order. */
function replay(changes: Change[]): Map<string, ReportState> {
  const states = new Map<string, ReportState>();
  for (const change of changes) {
    states.set(
      change.reportId,
      mergeChange(states.get(change.reportId) ?? emptyReportState(), change).state,
    );
  }
  return states;
}

describe("mergeChange", () => {
  it("writes each field whose register is older, and leaves the rest", () => {
    const first = upsert(hlc(10, alice), { title: "Pump", severity: 3 });
    const a = mergeChange(emptyReportState(), first);
    expect(a.outcome).toBe("applied");
    expect(a.state.fields).toEqual({ title: "Pump", severity: 3 });

    const b = mergeChange(a.state, upsert(hlc(20, bob), { severity: 4, notes: "seen" }));
    expect(b.outcome).toBe("applied");
    expect(b.state.fields).toEqual({ title: "Pump", severity: 4, notes: "seen" });
    expect(b.before).toEqual({ severity: 3, notes: null });
    expect(b.after).toEqual({ severity: 4, notes: "seen" });
  });

  it("reports partial when some fields lose and superseded when all do", () => {
    const state = mergeChange(
      emptyReportState(),
      upsert(hlc(20, bob), { title: "new", severity: 5 }),
    ).state;
    const partial = mergeChange(state, upsert(hlc(30, alice), { title: "newer" }));
    const stale = upsert(hlc(10, alice), { title: "old", notes: "late" });
    const mixed = mergeChange(state, stale);
    expect(partial.outcome).toBe("applied");
    expect(mixed.outcome).toBe("partial");
    expect(mixed.fieldsApplied).toEqual(["notes"]);
    expect(mixed.fieldsSuperseded).toEqual(["title"]);
    expect(mergeChange(state, upsert(hlc(10, alice), { title: "old" })).outcome).toBe("superseded");
  });

  it("null clears a field but keeps its register, so an older write cannot resurrect it", () => {
    const set = mergeChange(emptyReportState(), upsert(hlc(10, alice), { notes: "x" })).state;
    const cleared = mergeChange(set, upsert(hlc(20, alice), { notes: null })).state;
    expect(cleared.fields.notes).toBeNull();
    expect(
      mergeChange(cleared, upsert(hlc(15, bob), { notes: "y" })).state.fields.notes,
    ).toBeNull();
  });

  it("deletes win: a later write to a deleted report is superseded", () => {
    const created = mergeChange(emptyReportState(), upsert(hlc(10, alice), { title: "x" })).state;
    const deleted = mergeChange(created, remove(hlc(20, bob)));
    expect(deleted.outcome).toBe("applied");
    expect(deleted.before).toEqual({ title: "x" });
    expect(deleted.state.deletedHlc).not.toBeNull();
    const late = mergeChange(deleted.state, upsert(hlc(99, alice), { title: "y" }));
    expect(late.outcome).toBe("superseded");
    expect(late.state.fields).toEqual({});
  });

  it("records a conflict when the editor had not seen another device's write", () => {
    const seen = hlc(5, alice);
    const base = mergeChange(emptyReportState(), upsert(seen, { title: "v1" })).state;
    const byBob = mergeChange(base, upsert(hlc(10, bob), { title: "bob" }, { title: seen }));
    expect(byBob.conflicts).toEqual([]); // Bob edited what he saw: no conflict.
    const byAlice = mergeChange(
      byBob.state,
      upsert(hlc(12, alice), { title: "alice" }, { title: seen }),
    );
    expect(byAlice.conflicts).toHaveLength(1);
    expect(byAlice.conflicts[0]).toMatchObject({
      field: "title",
      winner: { deviceId: alice, value: "alice" },
      loser: { deviceId: bob, value: "bob" },
    });
  });

  it("does not call a device's edit of its own newer write a conflict", () => {
    const s1 = mergeChange(emptyReportState(), upsert(hlc(5, alice), { title: "a" })).state;
    const s2 = mergeChange(s1, upsert(hlc(6, alice), { title: "b" })).state;
    expect(
      mergeChange(s2, upsert(hlc(7, alice), { title: "c" }, { title: hlc(5, alice) })).conflicts,
    ).toEqual([]);
  });

  it("is idempotent: merging the same change again changes nothing", () => {
    const change = upsert(hlc(10, alice), { title: "x" });
    const once = mergeChange(emptyReportState(), change);
    const twice = mergeChange(once.state, change);
    expect(twice.state).toEqual(once.state);
    expect(twice.conflicts).toEqual([]);
  });
});

describe("merge properties", () => {
  const numRuns = Number(process.env.PROPERTY_RUNS ?? 1000);

  it("any order and any duplication of delivery gives the same final state", () => {
    fc.assert(
      fc.property(
        changeSets().chain((changes) =>
          fc.tuple(fc.constant(changes), deliveries(changes), deliveries(changes)),
        ),
        ([changes, first, second]) => {
          const inOrder = replay(changes);
          expect(replay(first)).toEqual(inOrder);
          expect(replay(second)).toEqual(inOrder);
        },
      ),
      { numRuns },
    );
  });

  it("equals the order-free reference model", () => {
    fc.assert(
      fc.property(
        changeSets().chain((changes) => deliveries(changes)),
        (delivery) => {
          expect(replay(delivery)).toEqual(referenceState(delivery));
        },
      ),
      { numRuns },
    );
  });
});
