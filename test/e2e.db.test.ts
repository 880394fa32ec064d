import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { formatHlc } from "../core/hlc.ts";
import { startTestCloud, syncUntilSettled, type TestCloud } from "./support/cloud.ts";
import { dbTargets } from "./support/db.ts";

describe.each(dbTargets())("edge agents → local cloud → PostgreSQL (%s)", (target) => {
  let t: TestCloud;
  beforeAll(async () => {
    t = await startTestCloud(target);
  });
  afterAll(() => t.stop());

  it("two agents' creates and edits reach the database and both agents' pulled state", async () => {
    const a = await t.agent("site A");
    const b = await t.agent("site B");

    const pump = a.agent.create({ title: "Pump 3 leaking", severity: 3 });
    const gate = b.agent.create({ title: "Gate sensor offline" });
    a.agent.update(pump.id, { severity: 4, notes: "valve replaced" });
    await syncUntilSettled(a.agent);
    await syncUntilSettled(b.agent);
    // B edits A's report after seeing it; A pulls B's edit.
    b.agent.update(pump.id, { status: "closed" });
    b.agent.delete(gate.id);
    await syncUntilSettled(b.agent);
    await syncUntilSettled(a.agent);

    const rows = await t.testDb.db.query<{
      id: string;
      fields: unknown;
      deleted_hlc: string | null;
      version: number;
    }>(
      "select id, fields, deleted_hlc, version from reports where id = any($1::uuid[]) order by id",
      [[pump.id, gate.id]],
    );
    const byId = Object.fromEntries(rows.map((r) => [r.id, r]));
    expect(byId[pump.id]).toMatchObject({
      fields: { title: "Pump 3 leaking", severity: 4, notes: "valve replaced", status: "closed" },
      deleted_hlc: null,
      version: 3,
    });
    expect(byId[gate.id]).toMatchObject({ fields: {}, version: 2 });
    expect(byId[gate.id]!.deleted_hlc).not.toBeNull();

    const audit = await t.testDb.db.query<{ n: number }>(
      "select count(*)::int as n from audit_log",
    );
    expect(audit[0]!.n).toBe(5);

    for (const agent of [a.agent, b.agent]) {
      expect(agent.get(pump.id)).toMatchObject({
        fields: { title: "Pump 3 leaking", severity: 4, notes: "valve replaced", status: "closed" },
        version: 3,
      });
      expect(agent.get(gate.id)).toMatchObject({ deleted: true, fields: {} });
      expect(agent.status()).toMatchObject({
        pending: 0,
        sent: 0,
        applied: agent === a.agent ? 2 : 3,
        rejected: 0,
      });
    }
  });

  it("sending the same batch twice stores each change once", async () => {
    const device = await t.createDevice("resender");
    const token = await t.tokenFor(device.clientId, device.clientSecret);
    const reportId = crypto.randomUUID();
    const changes = [1, 2, 3].map((i) => ({
      changeId: crypto.randomUUID(),
      reportId,
      op: "upsert",
      hlc: formatHlc({ wall: Date.now(), counter: i, node: device.id }),
      fields: { [`f${i}`]: i },
    }));
    const first = await t.api("/v1/changes", { token, body: { changes } });
    const second = await t.api("/v1/changes", { token, body: { changes } });
    expect(first.status).toBe(202);
    expect(second.status).toBe(202);
    expect(first.body.accepted).toEqual(changes.map((c) => c.changeId));

    const ids = changes.map((c) => c.changeId);
    const deadline = Date.now() + 60_000;
    let count = 0;
    while (Date.now() < deadline) {
      count = (
        await t.testDb.db.query<{ n: number }>(
          "select count(*)::int as n from audit_log where change_id = any($1::uuid[])",
          [ids],
        )
      )[0]!.n;
      if (count === 3) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    // Give a duplicate delivery time to show up, then count again.
    await new Promise((r) => setTimeout(r, 500));
    const rows = await t.testDb.db.query<{ n: number; version: number }>(
      "select (select count(*)::int from audit_log where change_id = any($1::uuid[])) as n, version from reports where id = $2",
      [ids, reportId],
    );
    expect(rows[0]).toEqual({ n: 3, version: 3 });
  });

  describe("requests without a valid token get 401 from the gateway and reach no handler", () => {
    const expired = async () => {
      const { SignJWT } = await import("jose");
      const past = Math.floor(Date.now() / 1000) - 3600;
      return new SignJWT({ project: t.cloud.credentials.projects.demo!.id, role: "admin" })
        .setProtectedHeader({ alg: "ES256", kid: t.cloud.deps.keys.signing.kid })
        .setSubject(crypto.randomUUID())
        .setIssuer("edge-sync")
        .setAudience("edge-sync-api")
        .setIssuedAt(past - 900)
        .setExpirationTime(past)
        .setJti(crypto.randomUUID())
        .sign(t.cloud.deps.keys.signing.key);
    };
    it.each([
      ["no token", async () => ({})],
      ["a garbage token", async () => ({ authorization: "Bearer not.a.jwt" })],
      ["an expired token", async () => ({ authorization: `Bearer ${await expired()}` })],
    ])("%s", async (_, headers) => {
      for (const path of ["/v1/me", "/v1/sync"]) {
        const res = await t.api(path, { headers: await headers() });
        expect(res.status).toBe(401);
        expect(res.body).toEqual({ error: { code: "unauthorized", message: expect.any(String) } });
        // Set only by the gateway itself: the handler never ran.
        expect(res.headers.get("x-amzn-errortype")).toBe("UNAUTHORIZED");
      }
      const push = await t.api("/v1/changes", { headers: await headers(), body: { changes: [] } });
      expect(push.status).toBe(401);
    });
  });

  it("lets an admin verify the audit chains, and not a device", async () => {
    const admin = await t.adminToken();
    const res = await t.api("/v1/audit/verify", { token: admin });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ ok: true, checked: expect.any(Number) });
    expect(res.body.checked).toBeGreaterThan(0);
    const device = await t.createDevice("curious");
    const deviceToken = await t.tokenFor(device.clientId, device.clientSecret);
    expect((await t.api("/v1/audit/verify", { token: deviceToken })).status).toBe(403);
  });

  it("sends the security headers on every response, the gateway's own included, and no CORS grant", async () => {
    const responses = [
      await t.api("/v1/health"),
      await t.api("/v1/me"),
      await t.api("/v1/no-such-route"),
      await t.api("/v1/me", { token: await t.adminToken() }),
    ];
    for (const res of responses) {
      expect(res.headers.get("x-content-type-options")).toBe("nosniff");
      expect(res.headers.get("strict-transport-security")).toMatch(/max-age=\d+/);
      expect(res.headers.get("cache-control")).toBe("no-store");
      expect(res.headers.get("x-frame-options")).toBe("DENY");
      expect(res.headers.get("access-control-allow-origin")).toBeNull();
    }
  });

  it("answers health with both dependencies checked", async () => {
    const res = await t.api("/v1/health");
    expect(res).toMatchObject({
      status: 200,
      body: { status: "ok", checks: { db: "ok", queue: "ok" } },
    });
  });
});
