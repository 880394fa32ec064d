import Database from "better-sqlite3";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { formatHlc } from "../core/hlc.ts";
import { type JsonObject, type JsonValue, storableText } from "../core/json.ts";
import { EdgeAgentError } from "../edge-agent/agent.ts";
import { startTestCloud, syncUntilSettled, type TestCloud } from "./support/cloud.ts";
import { dbTargets } from "./support/db.ts";
import { runs } from "./support/runs.ts";

const RUNS = runs("HOSTILE_RUNS", 500, 250);

const nest = (depth: number): JsonValue => (depth === 0 ? "bottom" : [nest(depth - 1)]);
/** An object whose own key is `__proto__`, as JSON.parse makes it. */
const withProtoKey = (value: JsonValue): JsonValue =>
  JSON.parse(`{"__proto__": ${JSON.stringify(value)}, "n": 1}`) as JsonValue;

/** Values the cloud stores, however strange. */
const storable: fc.Arbitrary<JsonValue> = fc.oneof(
  fc.string({ unit: "grapheme", maxLength: 12 }).filter(storableText),
  fc.constantFrom("Pump 3 🚀", "\uFFFE", "a\uFFFFb", "👩‍🔧 水 é", "\u0007\t\n", ""),
  fc.integer(),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.boolean(),
  fc.constant(null),
  fc.integer({ min: 1, max: 16 }).map(nest),
  fc.constantFrom("x", "🚀").map(withProtoKey),
  fc.array(fc.string({ unit: "grapheme", maxLength: 4 }).filter(storableText), { maxLength: 4 }),
);

/** Values the cloud refuses, each with the code the agent must refuse it with at once. */
const hostile: fc.Arbitrary<[JsonValue, string]> = fc.oneof(
  fc.integer({ min: 17, max: 40 }).map((d): [JsonValue, string] => [nest(d), "too_deep"]),
  fc.constantFrom<[JsonValue, string]>(
    ["a\u0000b", "invalid_text"],
    ["lone \ud800 surrogate", "invalid_text"],
    [{ key: ["\udfff"] }, "invalid_text"],
    ["x".repeat(40 * 1024), "too_large"],
  ),
);

type Fields = { fields: JsonObject; refusal?: string };

const validFields: fc.Arbitrary<Fields> = fc
  .dictionary(fc.constantFrom("title", "notes", "severity", "tags", "meta"), storable, {
    minKeys: 1,
    maxKeys: 4,
  })
  .map((fields) => ({ fields }));

const hostileFields: fc.Arbitrary<Fields> = fc.oneof(
  fc.tuple(storable, hostile).map(([ok, [bad, refusal]]) => ({
    fields: { title: ok, notes: bad },
    refusal,
  })),
  fc.constant({
    fields: Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`f${i}`, i])),
    refusal: "invalid_change",
  }),
  fc.constant({ fields: JSON.parse('{"__proto__": 1}') as JsonObject, refusal: "invalid_change" }),
  fc.constant({ fields: { "no spaces": 1 }, refusal: "invalid_change" }),
);

/** What an older or damaged agent could hold in its outbox: each must end `rejected`. */
const injected = fc.constantFrom(
  { fields: `{"deep": ${JSON.stringify(nest(30))}}`, changeId: "uuid", code: "too_deep" },
  { fields: '{"notes": "lone \\ud800"}', changeId: "uuid", code: "invalid_text" },
  { fields: `{"notes": "${"y".repeat(40 * 1024)}"}`, changeId: "uuid", code: "too_large" },
  { fields: '{"title": "unreadable id"}', changeId: "not-a-uuid", code: "validation_failed" },
);

type Action =
  | { kind: "create"; write: Fields }
  | { kind: "update"; pick: number; write: Fields }
  | { kind: "delete"; pick: number }
  | { kind: "inject"; row: { fields: string; changeId: string; code: string } };

const action: fc.Arbitrary<Action> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc
      .oneof(validFields, hostileFields)
      .map((write) => ({ kind: "create" as const, write })),
  },
  {
    weight: 4,
    arbitrary: fc
      .tuple(fc.nat(), fc.oneof(validFields, hostileFields))
      .map(([pick, write]) => ({ kind: "update" as const, pick, write })),
  },
  { weight: 1, arbitrary: fc.nat().map((pick) => ({ kind: "delete" as const, pick })) },
  { weight: 1, arbitrary: injected.map((row) => ({ kind: "inject" as const, row })) },
);

/** JSON with keys sorted at every level: jsonb keeps its own key order. */
function canonical(value: unknown): string {
  if (value === null || typeof value !== "object") return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(canonical).join(",")}]`;
  const keys = Object.keys(value).sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonical((value as Record<string, unknown>)[k])}`).join(",")}}`;
}

describe.each(dbTargets().slice(0, 1))(
  "hostile and valid writes through the agent (%s)",
  (target) => {
    let t: TestCloud;
    beforeAll(async () => {
      t = await startTestCloud(target);
    });
    afterAll(() => t.stop());

    it(`ends every write refused at once or with an outcome, over ${RUNS} generated sequences`, async () => {
      const { agent, path, deviceId } = await t.agent("hostile site");
      const raw = new Database(path);
      const outboxSize = () =>
        (raw.prepare("select count(*) as n from outbox").get() as { n: number }).n;
      const inject = raw.prepare(
        `insert into outbox (change_id, report_id, op, hlc, fields, base, created_at)
       values (?, ?, 'upsert', ?, ?, '{}', ?)`,
      );
      const reports: string[] = [];
      const deleted = new Set<string>();
      const expectedRejections = new Map<string, string>();
      let wall = Date.now();

      const apply = (a: Action) => {
        const before = outboxSize();
        if (a.kind === "inject") {
          const changeId =
            a.row.changeId === "uuid" ? crypto.randomUUID() : `bad-${crypto.randomUUID()}`;
          const hlc = formatHlc({ wall: ++wall, counter: 0, node: deviceId });
          inject.run(changeId, crypto.randomUUID(), hlc, a.row.fields, new Date().toISOString());
          expectedRejections.set(changeId, a.row.code);
          return;
        }
        if (a.kind !== "create" && reports.length === 0) return;
        const id = a.kind === "create" ? undefined : reports[a.pick % reports.length]!;
        const shown = id ? agent.get(id) : undefined;
        // A deleted report refuses every write, whatever it holds.
        const refusal =
          id && deleted.has(id)
            ? "report_deleted"
            : a.kind === "delete"
              ? undefined
              : a.write.refusal;
        try {
          const report =
            a.kind === "create"
              ? agent.create(a.write.fields)
              : a.kind === "update"
                ? agent.update(id!, a.write.fields)
                : agent.delete(id!);
          expect(refusal, "a write the cloud refuses was stored").toBeUndefined();
          expect(outboxSize()).toBe(before + 1);
          if (a.kind === "create") reports.push(report.id);
          if (a.kind === "delete") deleted.add(report.id);
        } catch (error) {
          if (!(error instanceof EdgeAgentError)) throw error;
          expect(error.code).toBe(refusal);
          // Refused at once: nothing stored, the local view untouched.
          expect(outboxSize()).toBe(before);
          if (id) expect(canonical(agent.get(id))).toBe(canonical(shown));
        }
      };

      let runs = 0;
      await fc.assert(
        fc.asyncProperty(fc.array(action, { minLength: 1, maxLength: 5 }), async (actions) => {
          for (const a of actions) apply(a);
          // Sync now and then, so later writes land on reports the cloud has merged.
          if (++runs % 100 === 0) await syncUntilSettled(agent, 60_000);
        }),
        { numRuns: RUNS, seed: Number(process.env.HOSTILE_SEED ?? 20261202) },
      );
      await syncUntilSettled(agent, 120_000);
      raw.close();

      // Nothing pending or sent; every injected change rejected with its code,
      // every other one applied (or partly, or superseded by a delete).
      const outbox = new Database(path, { readonly: true })
        .prepare("select change_id, state, code from outbox")
        .all() as { change_id: string; state: string; code: string | null }[];
      expect(outbox.length).toBeGreaterThan(RUNS);
      for (const row of outbox) {
        const rejection = expectedRejections.get(row.change_id);
        if (rejection)
          expect(row, row.change_id).toMatchObject({ state: "rejected", code: rejection });
        else expect(["applied", "partial", "superseded"], row.change_id).toContain(row.state);
      }
      expect(expectedRejections.size).toBeGreaterThan(0);

      // And each report reads the same in the cloud as on the device.
      const admin = await t.adminToken();
      for (const id of reports) {
        const cloud = await t.api(`/v1/reports/${id}`, { token: admin });
        const local = agent.get(id)!;
        expect(canonical(cloud.body.fields), id).toBe(canonical(local.fields));
        expect(cloud.body.deleted).toBe(local.deleted);
      }
    }, 300_000);
  },
);
