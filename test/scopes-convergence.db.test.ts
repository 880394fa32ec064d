import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type EdgeAgent, EdgeAgentError } from "../edge-agent/agent.ts";
import { startTestCloud, syncUntilSettled, type TestCloud } from "./support/cloud.ts";
import { dbTargets } from "./support/db.ts";

type Step =
  | { kind: "create"; agent: number; scope: number }
  | { kind: "update"; agent: number; pick: number; value: number | null }
  | { kind: "delete"; agent: number; pick: number }
  | { kind: "scopes"; agent: number; mask: number }
  | { kind: "toggle"; agent: number }
  | { kind: "sync"; agent: number }
  | { kind: "syncAll" };

const agentIx = fc.integer({ min: 0, max: 2 });
const step: fc.Arbitrary<Step> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant("create" as const),
      agent: agentIx,
      // 0 to 2: one of three sites; 3: none.
      scope: fc.integer({ min: 0, max: 3 }),
    }),
  },
  {
    weight: 6,
    arbitrary: fc.record({
      kind: fc.constant("update" as const),
      agent: agentIx,
      pick: fc.nat(),
      value: fc.oneof(fc.integer({ min: 0, max: 9 }), fc.constant(null)),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({ kind: fc.constant("delete" as const), agent: agentIx, pick: fc.nat() }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant("scopes" as const),
      agent: agentIx,
      // Each bit a site; 0: the whole project.
      mask: fc.integer({ min: 0, max: 7 }),
    }),
  },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("toggle" as const), agent: agentIx }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant("sync" as const), agent: agentIx }) },
  { weight: 1, arbitrary: fc.constant({ kind: "syncAll" as const }) },
);

/** A write the agent refuses for its scopes (as the cloud would) is simply not made. */
function unlessOutOfScope(write: () => unknown): void {
  try {
    write();
  } catch (error) {
    if (!(error instanceof EdgeAgentError && error.code === "scope_forbidden")) throw error;
  }
}

describe.each(dbTargets())("agents with changing scopes converge (%s)", (target) => {
  let t: TestCloud;
  let admin: string;
  beforeAll(async () => {
    t = await startTestCloud(target);
    admin = await t.adminToken();
  });
  afterAll(() => t.stop());

  it("each agent ends holding exactly the cloud's reports of its scopes, whatever the edits, scope changes, offline spells and syncs", async () => {
    let run = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(step, { minLength: 10, maxLength: 40 }), async (steps) => {
        run++;
        const sites = [0, 1, 2].map((i) => `run${run}-site${i}`);
        const agents: { agent: EdgeAgent; deviceId: string }[] = [];
        for (let i = 0; i < 3; i++) agents.push(await t.agent(`run ${run} tablet ${i}`));
        const scopesOf = agents.map(() => [] as string[]);
        const online = [true, true, true];
        const live = (a: EdgeAgent) => a.list().filter((r) => !r.deleted);

        for (const s of steps) {
          if (s.kind === "syncAll") {
            await Promise.all(agents.map((a, i) => (online[i] ? a.agent.syncOnce() : undefined)));
            continue;
          }
          const { agent, deviceId } = agents[s.agent]!;
          if (s.kind === "create") {
            const scope = sites[s.scope];
            unlessOutOfScope(() => agent.create({ n: 0 }, scope ? { scope } : {}));
          }
          if (s.kind === "scopes") {
            const scopes = sites.filter((_, bit) => s.mask & (1 << bit));
            const set = await t.api(`/v1/devices/${deviceId}/scopes`, {
              method: "PUT",
              token: admin,
              body: { scopes },
            });
            expect(set.status).toBe(200);
            scopesOf[s.agent] = scopes;
          }
          if (s.kind === "toggle") online[s.agent] = !online[s.agent];
          if (s.kind === "sync" && online[s.agent]) await agent.syncOnce();
          const reports = live(agent);
          if (reports.length === 0) continue;
          const target =
            reports[s.kind === "update" || s.kind === "delete" ? s.pick % reports.length : 0]!;
          if (s.kind === "update") unlessOutOfScope(() => agent.update(target.id, { n: s.value }));
          if (s.kind === "delete") unlessOutOfScope(() => agent.delete(target.id));
        }

        // Everyone reconnects; settle, then one more round each for the others' last changes.
        for (const { agent } of agents) await syncUntilSettled(agent);
        for (const { agent } of agents) await agent.syncOnce();

        for (const [i, { agent }] of agents.entries()) {
          const scopes = scopesOf[i]!;
          const cloud = await t.testDb.db.query<{
            id: string;
            fields: unknown;
            clocks: unknown;
            deleted_hlc: string | null;
          }>(
            `select id, fields, clocks, deleted_hlc from reports
              where cardinality($1::text[]) = 0 or scope = any($1::text[]) order by id`,
            [scopes],
          );
          const local = agent.list().sort((a, b) => (a.id < b.id ? -1 : 1));
          expect(local.map((r) => r.id)).toEqual(cloud.map((r) => r.id));
          expect(
            local.map((r) => ({ fields: r.fields, clocks: r.clocks, deleted: r.deleted })),
          ).toEqual(
            cloud.map((r) => ({
              fields: r.fields,
              clocks: r.clocks,
              deleted: r.deleted_hlc !== null,
            })),
          );
          expect(agent.status().scopes).toEqual(scopes);
        }
        for (const { agent } of agents) agent.close();
      }),
      { numRuns: Number(process.env.CONVERGENCE_RUNS ?? 8) },
    );
  }, 300_000);
});
