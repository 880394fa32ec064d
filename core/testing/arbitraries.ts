import fc from "fast-check";
import type { Change } from "../change.ts";
import { formatHlc } from "../hlc.ts";

/** Device ids for generated changes (the HLC node is the device id). */
export const DEVICES = [
  "11111111-1111-4111-8111-111111111111",
  "22222222-2222-4222-8222-222222222222",
  "33333333-3333-4333-8333-333333333333",
] as const;
export const REPORTS = [
  "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa",
  "bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb",
] as const;
const FIELDS = ["title", "severity", "notes"] as const;

const fieldValue = fc.oneof(
  fc.string({ maxLength: 8 }),
  fc.integer(),
  fc.constant(null),
  fc.boolean(),
);

interface Draft {
  device: number;
  report: number;
  wall: number;
  op: "upsert" | "delete";
  fields: Record<string, unknown>;
  base: Record<string, number | null>;
}

const draft = fc.record({
  device: fc.integer({ min: 0, max: DEVICES.length - 1 }),
  report: fc.integer({ min: 0, max: REPORTS.length - 1 }),
  wall: fc.integer({ min: 1, max: 50 }),
  op: fc.oneof(
    { weight: 9, arbitrary: fc.constant("upsert" as const) },
    { weight: 1, arbitrary: fc.constant("delete" as const) },
  ),
  fields: fc.dictionary(fc.constantFrom(...FIELDS), fieldValue, { minKeys: 1, maxKeys: 3 }),
  base: fc.dictionary(
    fc.constantFrom(...FIELDS),
    fc.option(fc.integer({ min: 1, max: 50 }), { nil: null }),
    { maxKeys: 3 },
  ),
}) as fc.Arbitrary<Draft>;

/**
 * Random sets of changes from several devices to a couple of reports:
 * upserts of overlapping fields, some deletes, and `base` clocks that are
 * sometimes current and sometimes stale. Each change has a distinct HLC
 * (a device's counter increases), as real devices produce.
 */
export const changeSets = (maxLength = 30): fc.Arbitrary<Change[]> =>
  fc.array(draft, { minLength: 1, maxLength }).map((drafts) => {
    const counters = new Map<string, number>();
    return drafts.map((d, i): Change => {
      const node = DEVICES[d.device]!;
      const key = `${node}:${d.wall}`;
      const counter = counters.get(key) ?? 0;
      counters.set(key, counter + 1);
      const hlc = formatHlc({ wall: d.wall, counter, node });
      const changeId = `0193a1b2-0000-7000-8000-${String(i).padStart(12, "0")}`;
      const reportId = REPORTS[d.report]!;
      if (d.op === "delete") return { changeId, reportId, op: "delete", hlc };
      const base = Object.fromEntries(
        Object.entries(d.base)
          .filter(([f]) => f in d.fields)
          .map(([f, wall]) => [
            f,
            wall === null
              ? null
              : formatHlc({ wall, counter: 0, node: DEVICES[(d.device + 1) % DEVICES.length]! }),
          ]),
      );
      return { changeId, reportId, op: "upsert", hlc, fields: d.fields as never, base };
    });
  });

/** A delivery of a change set: any order, with some changes delivered more than once. */
export const deliveries = (changes: Change[]): fc.Arbitrary<Change[]> =>
  fc
    .tuple(
      fc.shuffledSubarray(changes, { minLength: 0 }),
      fc.shuffledSubarray(changes, { minLength: changes.length }),
    )
    .chain(([dupes, all]) =>
      fc.shuffledSubarray([...all, ...dupes], { minLength: all.length + dupes.length }),
    );
