import Database from "better-sqlite3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { formatHlc } from "../core/hlc.ts";
import type { EdgeAgent } from "../edge-agent/agent.ts";
import { provision } from "../local/provision.ts";
import { runCli } from "./support/cli.ts";
import { startTestCloud, syncUntilSettled, type TestCloud } from "./support/cloud.ts";
import { dbTargets } from "./support/db.ts";

/** Whether the agent's SQLite file still holds a row of the report, hidden or not. */
function holds(path: string, reportId: string): boolean {
  const db = new Database(path, { readonly: true });
  try {
    return db.prepare("select 1 from reports where id = ?").get(reportId) !== undefined;
  } finally {
    db.close();
  }
}

const ids = (agent: EdgeAgent) => agent.list().map((r) => r.id);

describe.each(dbTargets())("scopes (%s)", (target) => {
  let t: TestCloud;
  let admin: string;
  beforeAll(async () => {
    t = await startTestCloud(target);
    admin = await t.adminToken();
  });
  afterAll(() => t.stop());

  const setScopes = async (deviceId: string, scopes: string[]) => {
    const answer = await t.api(`/v1/devices/${deviceId}/scopes`, {
      method: "PUT",
      token: admin,
      body: { scopes },
    });
    expect(answer.status).toBe(200);
    return answer.body;
  };

  /**
   * Reports of two sites and one of none, written by a device that syncs
   * the whole project. Each test has its own sites (the project is shared).
   */
  async function sites(label: string) {
    const hq = await t.agent(`${label} head office`);
    // Any text but control characters: commas, braces and quotes too (array literals).
    const N = `${label} «north», {ward "3"}`;
    const S = `${label}\\south`;
    const north = hq.agent.create({ title: "north pump" }, { scope: N });
    const north2 = hq.agent.create({ title: "north valve" }, { scope: N });
    const south = hq.agent.create({ title: "south gate" }, { scope: S });
    const loose = hq.agent.create({ title: "no site" });
    await syncUntilSettled(hq.agent);
    return { hq, north, north2, south, loose, N, S };
  }

  it("a device sees only its scopes' reports and cannot write outside them; one without scopes sees everything", async () => {
    const { hq, north, north2, south, loose, N, S } = await sites("visibility");
    const n = await t.agent("visibility north tablet");
    expect(await setScopes(n.deviceId, [N])).toEqual({ id: n.deviceId, scopes: [N] });
    await syncUntilSettled(n.agent);
    expect(ids(n.agent).sort()).toEqual([north.id, north2.id].sort());
    expect(n.agent.get(north.id)?.scope).toBe(N);
    expect(n.agent.status().scopes).toEqual([N]);
    // Its own new report takes its only scope, and reaches the head office.
    const own = n.agent.create({ title: "north leak" });
    expect(own.scope).toBe(N);
    await syncUntilSettled(n.agent);
    await hq.agent.syncOnce();
    expect(hq.agent.get(own.id)).toMatchObject({ scope: N, fields: { title: "north leak" } });
    expect(ids(hq.agent)).toEqual(expect.arrayContaining([south.id, loose.id, own.id]));

    // The agent refuses a write outside its scopes before storing anything.
    expect(() => n.agent.create({ title: "x" }, { scope: S })).toThrow(/not one of/);
    expect(n.agent.list()).toHaveLength(3);

    // Ingest refuses the same from a device that tries anyway (one without
    // a signing key, so that only its scopes are at stake), change by change.
    const rogue = await t.createDevice("visibility rogue");
    await setScopes(rogue.id, [N]);
    const token = await t.tokenFor(rogue.clientId, rogue.clientSecret);
    const hlc = formatHlc({ wall: Date.now(), counter: 0, node: rogue.id });
    const change = (reportId: string, extra: object) => ({
      changeId: crypto.randomUUID(),
      reportId,
      op: "upsert",
      hlc,
      fields: { title: "forged" },
      ...extra,
    });
    const forged = [
      change(south.id, {}),
      change(south.id, { scope: N }),
      change(crypto.randomUUID(), { scope: S }),
      change(crypto.randomUUID(), {}),
      change(loose.id, {}),
    ];
    const pushed = await t.api("/v1/changes", { token, body: { changes: forged } });
    expect(pushed.status).toBe(202);
    expect(pushed.body.accepted).toEqual([]);
    expect(pushed.body.rejected.map((r: { code: string }) => r.code)).toEqual(
      Array(forged.length).fill("scope_forbidden"),
    );
    // A report of its scope is its to write, even named in capitals.
    const capitals = await t.api("/v1/changes", {
      token,
      body: { changes: [change(north.id.toUpperCase(), {})] },
    });
    expect(capitals.body).toMatchObject({ accepted: [expect.any(String)], rejected: [] });
    // A change naming another scope than its report's is refused for any device.
    const spare = await t.createDevice("visibility spare");
    const moved = await t.api("/v1/changes", {
      token: await t.tokenFor(spare.clientId, spare.clientSecret),
      body: {
        changes: [
          {
            ...change(north.id, { scope: S }),
            hlc: formatHlc({ wall: Date.now(), counter: 0, node: spare.id }),
          },
        ],
      },
    });
    expect(moved.body.rejected[0]).toMatchObject({ code: "scope_forbidden" });
    expect(moved.body.rejected[0].message).toContain(`is in scope ${N}`);

    // Readers filter by scope; the fleet view shows each device's scopes.
    const listed = await t.api(`/v1/reports?scope=${encodeURIComponent(N)}`, { token: admin });
    expect(listed.body.items.map((r: { id: string }) => r.id).sort()).toEqual(
      [north.id, north2.id, own.id].sort(),
    );
    const fleet = await t.api("/v1/devices", { token: admin });
    const scopesOf = (id: string) =>
      fleet.body.items.find((d: { id: string }) => d.id === id).scopes;
    expect(scopesOf(n.deviceId)).toEqual([N]);
    expect(scopesOf(hq.deviceId)).toEqual([]);
  });

  it("a device is told of an erasure only in a report of its scopes or one it wrote to", async () => {
    const { north, south, loose, N, S } = await sites("erasing");
    const device = async (name: string, scopes: string[]) => {
      const d = await t.createDevice(name);
      if (scopes.length > 0) await setScopes(d.id, scopes);
      return { ...d, token: await t.tokenFor(d.clientId, d.clientSecret) };
    };
    const northern = await device("erasing north", [N]);
    const writer = await device("erasing writer", [S]);
    const whole = await device("erasing whole project", []);
    // The writer edits the southern report, then loses that site.
    const edit = {
      changeId: crypto.randomUUID(),
      reportId: south.id,
      op: "upsert",
      hlc: formatHlc({ wall: Date.now(), counter: 0, node: writer.id }),
      fields: { note: "gate stuck" },
    };
    const pushed = await t.api("/v1/changes", { token: writer.token, body: { changes: [edit] } });
    expect(pushed.body.accepted).toEqual([edit.changeId]);
    const deadline = Date.now() + 60_000;
    for (;;) {
      const { body } = await t.api("/v1/sync", { token: writer.token });
      if (body.acks.some((a: { changeId: string }) => a.changeId === edit.changeId)) break;
      if (Date.now() > deadline) throw new Error("the writer's edit was not applied in 60 s");
      await new Promise((r) => setTimeout(r, 100));
    }
    await setScopes(writer.id, [N]);

    const erased = [north, south, loose].map((r) => r.id);
    for (const reportId of erased) {
      const requested = await t.api("/v1/erasures", {
        token: admin,
        body: { reportId, reason: "data subject request" },
      });
      expect(requested.status).toBe(201);
    }
    const told = async (token: string) => {
      const { body } = await t.api("/v1/sync", { token });
      return body.erasures
        .map((e: { reportId: string }) => e.reportId)
        .filter((id: string) => erased.includes(id))
        .sort();
    };
    expect(await told(northern.token)).toEqual([north.id]);
    expect(await told(writer.token)).toEqual([north.id, south.id].sort());
    expect(await told(whole.token)).toEqual([...erased].sort());
  });

  it("adding a scope delivers that scope's reports on the next pull, and nothing else", async () => {
    const { south, loose, N, S } = await sites("adding");
    const n = await t.agent("adding north tablet");
    await setScopes(n.deviceId, [N]);
    await syncUntilSettled(n.agent);
    const before = ids(n.agent);

    await setScopes(n.deviceId, [N, S]);
    const round = await n.agent.syncOnce();
    expect(round.pulledReports).toBe(1);
    expect(ids(n.agent).sort()).toEqual([...before, south.id].sort());
    expect(n.agent.get(loose.id)).toBeUndefined();

    // Dropping every scope is the whole project: the rest arrives, once.
    await setScopes(n.deviceId, []);
    const outside = await t.testDb.db.query<{ n: number }>(
      "select count(*)::int as n from reports where scope is distinct from $1 and scope is distinct from $2",
      [N, S],
    );
    const whole = await n.agent.syncOnce();
    expect(whole.pulledReports).toBe(outside[0]!.n);
    expect(n.agent.get(loose.id)?.fields).toEqual({ title: "no site" });
    expect((await n.agent.syncOnce()).pulledReports).toBe(0);
  });

  it("removing a scope evicts its reports, each once this device's changes to it are acknowledged", async () => {
    const { north, north2, south, N, S } = await sites("removing");
    const n = await t.agent("removing tablet");
    await setScopes(n.deviceId, [N, S]);
    await syncUntilSettled(n.agent);
    expect(ids(n.agent)).toHaveLength(3);

    // One edit is in the queue, not yet applied; another is still on the device.
    await t.cloud.setConsumerRunning(false);
    n.agent.update(north.id, { title: "north pump, sealed" });
    await n.agent.syncOnce();
    expect(n.agent.status().sent).toBe(1);
    await setScopes(n.deviceId, [S]);
    n.agent.update(north2.id, { title: "north valve, replaced" });

    // The next round: the edit still on the device is refused (its report
    // left the scopes), and the reports it no longer syncs are dropped,
    // except the one with an edit in flight.
    await n.agent.syncOnce();
    expect(n.agent.status().rejectedChanges[0]).toMatchObject({
      reportId: north2.id,
      code: "scope_forbidden",
    });
    expect(ids(n.agent)).toEqual([south.id]);
    expect(holds(n.path, north2.id)).toBe(false);
    expect(holds(n.path, north.id)).toBe(true);
    expect(n.agent.status().sent).toBe(1);
    expect(() => n.agent.update(north.id, { title: "again" })).toThrow(/outside this device/);

    // Once the edit in flight is applied and acknowledged, that report goes too.
    await t.cloud.setConsumerRunning(true);
    await syncUntilSettled(n.agent);
    expect(n.agent.status()).toMatchObject({ sent: 0, applied: 1 });
    expect(holds(n.path, north.id)).toBe(false);
    const cloud = await t.api(`/v1/reports/${north.id}`, { token: admin });
    expect(cloud.body.fields.title).toBe("north pump, sealed");
    expect((await n.agent.syncOnce()).pulledReports).toBe(0);
  });

  it("a device given scopes after syncing the whole project keeps only theirs", async () => {
    const { hq, south, S } = await sites("narrowing");
    expect(ids(hq.agent).length).toBeGreaterThanOrEqual(4);
    await setScopes(hq.deviceId, [S]);
    const round = await hq.agent.syncOnce();
    expect(round.pulledReports).toBe(0);
    const project = await t.api(`/v1/reports?scope=${encodeURIComponent(S)}&limit=200`, {
      token: admin,
    });
    expect(ids(hq.agent).sort()).toEqual(
      project.body.items.map((r: { id: string }) => r.id).sort(),
    );
    expect(ids(hq.agent)).toContain(south.id);
  });

  it("keeps every setting of a device's scopes, with who made it, for auditors and admins", async () => {
    const device = await t.createDevice("history tablet");
    await setScopes(device.id, ["h-north"]);
    await setScopes(device.id, ["h-north", "h-south"]);
    await setScopes(device.id, ["h-north", "h-south"]); // the same again: no new setting
    await setScopes(device.id, []);
    const me = (await t.api("/v1/me", { token: admin })).body;
    const historyOf = (id: string, token = admin, query = "") =>
      t.api(`/v1/devices/${id}/scopes${query}`, { token });

    const history = await historyOf(device.id);
    expect(history.status).toBe(200);
    expect(
      history.body.items.map((i: { version: number; scopes: string[] }) => [i.version, i.scopes]),
    ).toEqual([
      [1, ["h-north"]],
      [2, ["h-north", "h-south"]],
      [3, []],
    ]);
    expect(history.body.nextCursor).toBeNull();
    for (const item of history.body.items) expect(item.setBy).toBe(me.id);
    const times = history.body.items.map((i: { setAt: string }) => Date.parse(i.setAt));
    expect(times).toEqual([...times].sort((a, b) => a - b));

    const first = await historyOf(device.id, admin, "?limit=2");
    expect(first.body.items.map((i: { version: number }) => i.version)).toEqual([1, 2]);
    const rest = await historyOf(device.id, admin, `?limit=2&cursor=${first.body.nextCursor}`);
    expect(rest.body).toMatchObject({ items: [{ version: 3 }], nextCursor: null });

    // Registered with scopes: its first setting is its registration.
    const scoped = await t.api("/v1/devices", {
      token: admin,
      body: { name: "history scoped tablet", scopes: ["h-east"] },
    });
    const [registered] = (await historyOf(scoped.body.id)).body.items;
    expect(registered).toMatchObject({ version: 1, scopes: ["h-east"], setBy: me.id });
    const listed = (await t.api("/v1/devices", { token: admin })).body.items.find(
      (d: { id: string }) => d.id === scoped.body.id,
    );
    expect(registered.setAt).toBe(listed.createdAt);

    // Auditors and admins only, and only their own project's devices.
    const analyst = await t.api("/v1/members", {
      token: admin,
      body: { name: "h", role: "analyst" },
    });
    const auditor = await t.api("/v1/members", {
      token: admin,
      body: { name: "a", role: "auditor" },
    });
    const tokenOf = (m: { body: { clientId: string; clientSecret: string } }) =>
      t.tokenFor(m.body.clientId, m.body.clientSecret);
    expect((await historyOf(device.id, await tokenOf(analyst))).status).toBe(403);
    expect((await historyOf(device.id, await tokenOf(auditor))).body.items).toHaveLength(3);
    expect((await historyOf(crypto.randomUUID())).status).toBe(404);
    const elsewhere = await provision(t.cloud.url, t.cloud.credentials.operator, {
      project: "history elsewhere",
      devices: ["their tablet"],
    });
    const theirs = await historyOf(elsewhere.devices[0]!.id);
    expect(theirs).toMatchObject({ status: 404, body: { error: { code: "not_found" } } });
  });

  it("the CLI creates in the device's only scope by default, in another it names, and refuses one it lacks", async () => {
    const device = await t.createDevice("cli tablet");
    await setScopes(device.id, ["cli-north", "cli-south"]);
    const env = { EDGE_AGENT_DB: `${t.dir}/cli-tablet.db` };
    const init = await runCli(
      [
        "init",
        "--api",
        t.cloud.url,
        "--client-id",
        device.clientId,
        "--client-secret",
        device.clientSecret,
      ],
      env,
    );
    expect(init.code).toBe(0);
    // Two scopes: the CLI must be told which.
    const unnamed = await runCli(["create", "--set", "title=x"], env);
    expect(unnamed.code).toBe(1);
    expect(unnamed.stderr).toMatch(/cli-north, cli-south.*--scope/);
    const lacking = await runCli(["create", "--scope", "cli-east", "--set", "title=x"], env);
    expect(lacking.code).toBe(1);
    expect(lacking.stderr).toMatch(/cli-east is not one of this device's scopes/);
    const named = await runCli(["create", "--scope", "cli-south", "--set", "title=gate"], env);
    expect(named.code).toBe(0);
    const shown = JSON.parse((await runCli(["show", named.stdout.trim(), "--json"], env)).stdout);
    expect(shown).toMatchObject({ scope: "cli-south", fields: { title: "gate" } });
    expect((await runCli(["list", "--json"], env)).stdout).not.toContain('"title":"x"');

    await setScopes(device.id, ["cli-south"]);
    expect((await runCli(["sync"], env)).code).toBe(0);
    const status = JSON.parse((await runCli(["status", "--json"], env)).stdout);
    expect(status.scopes).toEqual(["cli-south"]);
    const defaulted = await runCli(["create", "--set", "title=fence"], env);
    expect(defaulted.code).toBe(0);
    const again = JSON.parse(
      (await runCli(["show", defaulted.stdout.trim(), "--json"], env)).stdout,
    );
    expect(again.scope).toBe("cli-south");
  });
});
