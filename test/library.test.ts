import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { EdgeAgent, EdgeAgentError } from "edge-sync/agent";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestCloud, type TestCloud } from "./support/cloud.ts";

// The agent as an app embeds it: through the package's public entry only.
describe("edge-sync/agent, the agent as a library", () => {
  let t: TestCloud;
  let dir: string;
  beforeAll(async () => {
    t = await startTestCloud("pglite");
    dir = await mkdtemp(join(tmpdir(), "edge-sync-library-"));
  });
  afterAll(async () => {
    await t.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it("opens, writes offline, refuses what the cloud would refuse, syncs and reports its status", async () => {
    const device = await t.createDevice("embedded app");
    const agent = EdgeAgent.open(join(dir, "app.db"));
    await agent.init(t.cloud.url, device.clientId, device.clientSecret);
    const report = agent.create({ title: "Pump 3 leaking", severity: 3 });
    expect(() => agent.update(report.id, { notes: "x".repeat(40 * 1024) })).toThrow(EdgeAgentError);
    const stop = new AbortController();
    const rounds: boolean[] = [];
    const running = agent.run({
      intervalMs: 50,
      signal: stop.signal,
      onRound: (r) => {
        rounds.push(r.ok);
        if (agent.status().applied === 1) stop.abort();
      },
    });
    await running;
    expect(rounds.every(Boolean)).toBe(true);
    expect(agent.status()).toMatchObject({ pending: 0, sent: 0, applied: 1 });
    expect(agent.get(report.id)?.fields).toEqual({ title: "Pump 3 leaking", severity: 3 });
    agent.close();
  });
});
