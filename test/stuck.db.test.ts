import Database from "better-sqlite3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { formatHlc } from "../core/hlc.ts";
import { runCli } from "./support/cli.ts";
import { startTestCloud, syncUntilSettled, type TestCloud } from "./support/cloud.ts";
import { dbTargets } from "./support/db.ts";

/** JSON with keys sorted at every level: jsonb keeps its own key order. */
function canonical(value: unknown): string {
  if (value === null || typeof value !== "object") return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(canonical).join(",")}]`;
  const keys = Object.keys(value).sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonical((value as Record<string, unknown>)[k])}`).join(",")}}`;
}

/**
 * Nothing stuck, nothing silent: every change made in the field either
 * arrives or is visibly refused, and the centre sees a device in trouble.
 */
describe.each(dbTargets())("nothing stuck, nothing silent (%s)", (target) => {
  let t: TestCloud;
  beforeAll(async () => {
    t = await startTestCloud(target);
  });
  afterAll(() => t.stop());

  const devices = async () => (await t.api("/v1/devices", { token: await t.adminToken() })).body;

  it("carries emoji, noncharacters and __proto__ keys from one agent through the queue to another, unchanged", async () => {
    const a = await t.agent("emoji site a");
    const b = await t.agent("emoji site b");
    const meta = JSON.parse('{"__proto__": {"polluted": true}, "kind": "🚰"}');
    const fields = {
      title: "Pump 3 🚀",
      notes: "before\uFFFE\uFFFFafter",
      tags: ["水", "é", "👩‍🔧"],
      meta,
    };
    const report = a.agent.create(fields);
    await syncUntilSettled(a.agent);
    expect(a.agent.status()).toMatchObject({ applied: 1, rejected: 0 });
    await b.agent.syncOnce();
    const seen = b.agent.get(report.id)!;
    expect(canonical(seen.fields)).toBe(canonical(fields));
    expect(Object.keys(seen.fields.meta as object).sort()).toEqual(["__proto__", "kind"]);
    const [row] = await t.testDb.db.query<{ fields: unknown }>(
      "select fields from reports where id = $1",
      [report.id],
    );
    expect(canonical(row!.fields)).toBe(canonical(fields));
  });

  it("refuses a write the cloud would refuse at once, from the CLI, storing nothing", async () => {
    const { agent, path } = await t.agent("cli site");
    agent.close();
    const env = { EDGE_AGENT_DB: path };
    const deep = `${"[".repeat(40)}${"]".repeat(40)}`;
    for (const [set, code] of [
      [`deep=${deep}`, "too_deep"],
      [`notes=${"x".repeat(40 * 1024)}`, "too_large"],
      ["__proto__=1", "invalid_change"],
      ["1st=x", "invalid_change"],
    ] as const) {
      const result = await runCli(["create", "--set", set], env);
      expect(result.code, set.slice(0, 40)).toBe(1);
      expect(result.stderr).toContain(code);
    }
    const status = JSON.parse((await runCli(["status", "--json"], env)).stdout);
    expect(status).toMatchObject({ pending: 0, sent: 0 });
    expect(JSON.parse((await runCli(["list", "--json"], env)).stdout)).toEqual([]);
  });

  it("splits a push the cloud refuses whole until the change at fault stands alone, and sends the rest", async () => {
    const { agent, path, deviceId } = await t.agent("old outbox site");
    const before = agent.create({ title: "before" });
    // What an older agent could have queued: a change whose id the cloud
    // cannot read, which fails any request it is in.
    const raw = new Database(path);
    raw
      .prepare(
        `insert into outbox (change_id, report_id, op, hlc, fields, base, created_at)
         values ('not-a-uuid', ?, 'upsert', ?, '{"title":"bad"}', '{}', ?)`,
      )
      .run(
        crypto.randomUUID(),
        formatHlc({ wall: Date.now(), counter: 0, node: deviceId }),
        new Date().toISOString(),
      );
    raw.close();
    const after = Array.from({ length: 6 }, (_, i) => agent.create({ title: `after ${i}` }));
    await syncUntilSettled(agent);
    expect(agent.status()).toMatchObject({ pending: 0, sent: 0, applied: 7, rejected: 1 });
    expect(agent.status().rejectedChanges).toEqual([
      expect.objectContaining({ changeId: "not-a-uuid", code: "validation_failed" }),
    ]);
    for (const report of [before, ...after])
      expect(
        (await t.api(`/v1/reports/${report.id}`, { token: await t.adminToken() })).status,
      ).toBe(200);
  });

  it("shows a device whose requests the cloud refuses as failing, with the code, until one gets through", async () => {
    const { agent, deviceId } = await t.agent("refused site");
    await syncUntilSettled(agent);
    const healthy = (await devices()).items.find((d: { id: string }) => d.id === deviceId);
    expect(healthy).toMatchObject({
      state: "in_sync",
      lastErrorCode: null,
      agentVersion: expect.stringMatching(/^\d+\.\d+\.\d+/),
      platform: expect.stringContaining("node/"),
    });

    const device = await t.createDevice("refused by hand");
    const token = await t.tokenFor(device.clientId, device.clientSecret);
    const refused = await t.api("/v1/changes", {
      token,
      body: { changes: [{ reportId: crypto.randomUUID() }] },
      headers: { "user-agent": "edge-agent/0.0.9 (linux-arm64; node/20.1.0)" },
    });
    expect(refused.status).toBe(400);
    const failing = (await devices()).items.find((d: { id: string }) => d.id === device.id);
    expect(failing).toMatchObject({
      state: "failing",
      lastErrorCode: "validation_failed",
      lastErrorMessage: expect.stringContaining("changeId"),
      lastErrorAt: expect.any(String),
      agentVersion: "0.0.9",
      platform: "linux-arm64; node/20.1.0",
    });

    const pulled = await t.api("/v1/sync", { token });
    expect(pulled.status).toBe(200);
    const recovered = (await devices()).items.find((d: { id: string }) => d.id === device.id);
    expect(recovered.state).not.toBe("failing");
    // The last error stays on record after the device recovers.
    expect(recovered.lastErrorCode).toBe("validation_failed");
  });
});
