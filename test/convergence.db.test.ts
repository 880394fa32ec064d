import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { EdgeAgent } from "../edge-agent/agent.ts";
import { startTestCloud, syncUntilSettled, type TestCloud } from "./support/cloud.ts";
import { dbTargets } from "./support/db.ts";
import { runs } from "./support/runs.ts";

type Step =
  | { kind: "create"; agent: number; value: number }
  | { kind: "update"; agent: number; pick: number; field: string; value: number | string | null }
  | { kind: "delete"; agent: number; pick: number }
  | { kind: "toggle"; agent: number }
  | { kind: "sync"; agent: number }
  | { kind: "syncAll" };

const agentIx = fc.integer({ min: 0, max: 2 });
const step: fc.Arbitrary<Step> = fc.oneof(
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant("create" as const),
      agent: agentIx,
      value: fc.integer(),
    }),
  },
  {
    weight: 8,
    arbitrary: fc.record({
      kind: fc.constant("update" as const),
      agent: agentIx,
      pick: fc.nat(),
      field: fc.constantFrom("title", "severity", "status"),
      value: fc.oneof(
        fc.integer({ min: 0, max: 9 }),
        fc.constantFrom("open", "closed"),
        fc.constant(null),
      ),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({ kind: fc.constant("delete" as const), agent: agentIx, pick: fc.nat() }),
  },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("toggle" as const), agent: agentIx }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant("sync" as const), agent: agentIx }) },
  { weight: 1, arbitrary: fc.constant({ kind: "syncAll" as const }) },
);

describe.each(dbTargets())("three agents converge (%s)", (target) => {
  let t: TestCloud;
  beforeAll(async () => {
    t = await startTestCloud(target);
  });
  afterAll(() => t.stop());

  it("ends with identical reports on every agent and in the cloud, whatever the edits, offline periods and syncs", async () => {
    let run = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(step, { minLength: 10, maxLength: 50 }), async (steps) => {
        run++;
        const agents: EdgeAgent[] = [];
        for (let i = 0; i < 3; i++) agents.push((await t.agent(`run ${run} site ${i}`)).agent);
        const online = [true, true, true];
        const created: string[] = [];
        const editable = (a: EdgeAgent) => created.filter((id) => a.get(id) && !a.get(id)!.deleted);

        for (const s of steps) {
          if (s.kind === "syncAll") {
            await Promise.all(agents.map((a, i) => (online[i] ? a.syncOnce() : undefined)));
            continue;
          }
          const agent = agents[s.agent]!;
          if (s.kind === "create")
            created.push(agent.create({ title: `r${s.value}`, severity: 1 }).id);
          if (s.kind === "toggle") online[s.agent] = !online[s.agent];
          if (s.kind === "sync" && online[s.agent]) await agent.syncOnce();
          const ids = editable(agent);
          if (ids.length === 0) continue;
          if (s.kind === "update") agent.update(ids[s.pick % ids.length]!, { [s.field]: s.value });
          if (s.kind === "delete") agent.delete(ids[s.pick % ids.length]!);
        }

        // Everyone reconnects; settle, then one more round each to pull the others' last changes.
        for (const a of agents) await syncUntilSettled(a);
        for (const a of agents) await a.syncOnce();

        const cloud = await t.testDb.db.query<{
          id: string;
          fields: unknown;
          clocks: unknown;
          deleted_hlc: string | null;
        }>("select id, fields, clocks, deleted_hlc from reports where id = any($1::uuid[])", [
          created,
        ]);
        expect(cloud).toHaveLength(created.length);
        for (const row of cloud) {
          const expected = {
            fields: row.fields,
            clocks: row.clocks,
            deleted: row.deleted_hlc !== null,
          };
          for (const a of agents) {
            const local = a.get(row.id);
            expect({
              fields: local?.fields,
              clocks: local?.clocks,
              deleted: local?.deleted,
            }).toEqual(expected);
          }
        }
        for (const a of agents) a.close();
      }),
      { numRuns: runs("CONVERGENCE_RUNS", 20, 10) },
    );
  }, 300_000);
});
