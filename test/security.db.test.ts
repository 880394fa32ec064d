import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { base64url, generateKeyPair, importJWK, SignJWT } from "jose";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { formatHlc } from "../core/hlc.ts";
import { type KeyFile, newStoredKey } from "../functions/adapters/auth/keys.ts";
import { type Actor, actors } from "./support/api-actors.ts";
import { startTestCloud, type TestCloud } from "./support/cloud.ts";
import { dbTargets } from "./support/db.ts";

type Cast = Awaited<ReturnType<typeof actors>>;

describe.each(dbTargets())("security (%s)", (target) => {
  let t: TestCloud;
  let cast: Cast;
  beforeAll(async () => {
    t = await startTestCloud(target);
    cast = await actors(t);
  });
  afterAll(() => t.stop());

  describe("JWT attacks: each is a 401 from the gateway, and no handler runs", () => {
    const now = () => Math.floor(Date.now() / 1000);
    const claims = () => ({ project: cast.ownProject, role: "admin" });
    const sign = async (
      key: CryptoKey,
      kid: string,
      { iss = "edge-sync", aud = "edge-sync-api", exp = now() + 600, nbf = now() - 10 } = {},
    ) =>
      new SignJWT(claims())
        .setProtectedHeader({ alg: "ES256", kid })
        .setSubject(cast.own.admin.id)
        .setIssuer(iss)
        .setAudience(aud)
        .setIssuedAt(now() - 10)
        .setNotBefore(nbf)
        .setExpirationTime(exp)
        .setJti(crypto.randomUUID())
        .sign(key);
    const current = () => t.cloud.deps.keys.signing;
    const expectGateway401 = async (authorization: string) => {
      for (const path of ["/v1/me", "/v1/audit/verify"]) {
        const res = await t.api(path, { headers: { authorization } });
        expect(res.status).toBe(401);
        expect(res.body.error.code).toBe("unauthorized");
        // Set by the gateway only: the function never ran.
        expect(res.headers.get("x-amzn-errortype")).toBe("UNAUTHORIZED");
      }
    };

    it("accepts the genuine article (the baseline the attacks are measured against)", async () => {
      const token = await sign(current().key, current().kid);
      expect(
        (await t.api("/v1/me", { headers: { authorization: `Bearer ${token}` } })).status,
      ).toBe(200);
    });

    it.each([
      [
        "alg: none",
        async () => {
          const header = base64url.encode(
            JSON.stringify({ alg: "none", typ: "JWT", kid: current().kid }),
          );
          const payload = base64url.encode(
            JSON.stringify({
              ...claims(),
              sub: cast.own.admin.id,
              iss: "edge-sync",
              aud: "edge-sync-api",
              exp: now() + 600,
              iat: now(),
              jti: "x",
            }),
          );
          return `${header}.${payload}.`;
        },
      ],
      [
        "HS256 signed with the public key (algorithm confusion)",
        async () => {
          const publicJwk = t.cloud.deps.keys.jwks.keys[0]!;
          const secret = new TextEncoder().encode(JSON.stringify(publicJwk));
          return new SignJWT(claims())
            .setProtectedHeader({ alg: "HS256", kid: current().kid })
            .setSubject(cast.own.admin.id)
            .setIssuer("edge-sync")
            .setAudience("edge-sync-api")
            .setIssuedAt()
            .setExpirationTime("10m")
            .setJti("x")
            .sign(secret);
        },
      ],
      [
        "an unknown kid",
        async () => {
          const { privateKey } = await generateKeyPair("ES256");
          return sign(privateKey, "k-unknown");
        },
      ],
      [
        "a key we never issued, under our kid",
        async () => {
          const { privateKey } = await generateKeyPair("ES256");
          return sign(privateKey, current().kid);
        },
      ],
      [
        "a tampered payload",
        async () => {
          const [h, p, s] = (await sign(current().key, current().kid)).split(".");
          const payload = JSON.parse(new TextDecoder().decode(base64url.decode(p!)));
          payload.project = cast.other.projectId;
          return `${h}.${base64url.encode(JSON.stringify(payload))}.${s}`;
        },
      ],
      ["an expired token", () => sign(current().key, current().kid, { exp: now() - 60 })],
      ["nbf in the future", () => sign(current().key, current().kid, { nbf: now() + 600 })],
      ["a wrong issuer", () => sign(current().key, current().kid, { iss: "https://evil.example" })],
      ["a wrong audience", () => sign(current().key, current().kid, { aud: "another-api" })],
    ])("%s", async (_, make) => {
      await expectGateway401(`Bearer ${await make()}`);
    });

    it.each([
      ["no scheme", (token: string) => token],
      ["Basic scheme", (token: string) => `Basic ${token}`],
      ["Token scheme", (token: string) => `Token ${token}`],
      ["two spaces", (token: string) => `Bearer  ${token}`],
      ["trailing garbage", (token: string) => `Bearer ${token} extra`],
      ["scheme only", () => "Bearer"],
    ])("a token in the wrong header form: %s", async (_, form) => {
      await expectGateway401(form(await sign(current().key, current().kid)));
    });

    it("a token signed by a rotated-out key after its grace; within its grace it still works", async () => {
      const path = join(t.cloud.config.dataDir, "keys.json");
      const file = JSON.parse(await readFile(path, "utf8")) as KeyFile;
      const hour = 60 * 60_000;
      // Rotated out an hour ago (replaced by `previous`): past its grace.
      const oldest = await newStoredKey(new Date(Date.now() - 2 * hour));
      // Replaced a moment ago by the key the cloud signs with now: in its grace.
      const previous = await newStoredKey(new Date(Date.now() - hour));
      await writeFile(path, JSON.stringify({ keys: [oldest, previous, ...file.keys] }));
      try {
        // The cloud reloads its keys every 2 s.
        await vi.waitFor(
          () => expect(t.cloud.deps.keys.jwks.keys.map((k) => k.kid)).toContain(previous.kid),
          { timeout: 60_000 },
        );
        expect(t.cloud.deps.keys.jwks.keys.map((k) => k.kid)).not.toContain(oldest.kid);
        const keyOf = async (k: typeof oldest) =>
          (await importJWK({ ...k.privateJwk, alg: "ES256" }, "ES256")) as CryptoKey;
        await expectGateway401(`Bearer ${await sign(await keyOf(oldest), oldest.kid)}`);
        const inGrace = await sign(await keyOf(previous), previous.kid);
        expect(
          (await t.api("/v1/me", { headers: { authorization: `Bearer ${inGrace}` } })).status,
        ).toBe(200);
      } finally {
        await writeFile(path, JSON.stringify(file));
      }
    });

    it("a revoked device's token within 60 s, and its credentials at once", async () => {
      const device = (
        await t.api("/v1/devices", { token: cast.own.admin.token, body: { name: "to revoke" } })
      ).body;
      const token = await t.tokenFor(device.clientId, device.clientSecret);
      expect((await t.api("/v1/me", { token })).status).toBe(200);
      expect(
        (await t.api(`/v1/devices/${device.id}`, { method: "DELETE", token: cast.own.admin.token }))
          .status,
      ).toBe(204);
      const login = await t.api("/v1/oauth/token", {
        body: {
          grant_type: "client_credentials",
          client_id: device.clientId,
          client_secret: device.clientSecret,
        },
      });
      expect(login.status).toBe(401);
      // The device, holding the right secret, is told what happened and what to do.
      expect(login.body).toEqual({
        error: "invalid_client",
        error_description: expect.stringMatching(
          /^This client was revoked on \d{4}-\d\d-\d\dT[\d:.]+Z; ask an admin for new credentials\.$/,
        ),
      });
      // Anyone else learns nothing more than for an unknown client.
      const guess = await t.api("/v1/oauth/token", {
        body: {
          grant_type: "client_credentials",
          client_id: device.clientId,
          client_secret: `${device.clientSecret}x`,
        },
      });
      expect(guess.body.error_description).toBe("Unknown client or wrong secret.");
      const realNow = Date.now.bind(Date);
      const later = vi.spyOn(Date, "now").mockImplementation(() => realNow() + 60_000);
      try {
        await expectGateway401(`Bearer ${token}`);
      } finally {
        later.mockRestore();
      }
    });
  });

  describe("authorization matrix: every route × every role × own and other project", () => {
    const change = (deviceId: string) => ({
      changes: [
        {
          changeId: crypto.randomUUID(),
          reportId: crypto.randomUUID(),
          op: "upsert",
          hlc: formatHlc({ wall: Date.now(), counter: 0, node: deviceId }),
          fields: { title: "matrix" },
        },
      ],
    });
    type Call = (a: Actor) => Promise<{ status: number; body: unknown }>;
    const calls: Record<string, Call> = {
      "GET /v1/me": (a) => t.api("/v1/me", { token: a.token }),
      "POST /v1/changes": (a) => t.api("/v1/changes", { token: a.token, body: change(a.id) }),
      "GET /v1/sync": (a) => t.api("/v1/sync", { token: a.token }),
      "POST /v1/devices": (a) => t.api("/v1/devices", { token: a.token, body: { name: "m" } }),
      "DELETE /v1/devices/{id} (own project)": async (a) => {
        const target = (
          await t.api("/v1/devices", { token: cast.own.admin.token, body: { name: "target" } })
        ).body;
        return t.api(`/v1/devices/${target.id}`, { method: "DELETE", token: a.token });
      },
      "DELETE /v1/devices/{id} (other project)": (a) =>
        t.api(`/v1/devices/${cast.other.device.id}`, { method: "DELETE", token: a.token }),
      "POST /v1/members": (a) =>
        t.api("/v1/members", { token: a.token, body: { name: "m", role: "analyst" } }),
      "DELETE /v1/members/{id} (own project)": async (a) => {
        const target = (
          await t.api("/v1/members", {
            token: cast.own.admin.token,
            body: { name: "target", role: "analyst" },
          })
        ).body;
        return t.api(`/v1/members/${target.id}`, { method: "DELETE", token: a.token });
      },
      "DELETE /v1/members/{id} (other project)": (a) =>
        t.api(`/v1/members/${cast.other.analyst.id}`, { method: "DELETE", token: a.token }),
      "GET /v1/members": (a) => t.api("/v1/members", { token: a.token }),
      "POST /v1/projects": (a) => t.api("/v1/projects", { token: a.token, body: { name: "m" } }),
      "GET /v1/audit/verify": (a) => t.api("/v1/audit/verify", { token: a.token }),
      "GET /v1/activity": (a) => t.api("/v1/activity", { token: a.token }),
      "GET /v1/reports": (a) => t.api("/v1/reports", { token: a.token }),
      "GET /v1/reports/{id} (other project)": (a) =>
        t.api(`/v1/reports/${cast.other.reportId}`, { token: a.token }),
      "GET /v1/reports/{id}/history (other project)": (a) =>
        t.api(`/v1/reports/${cast.other.reportId}/history`, { token: a.token }),
      "GET /v1/conflicts": (a) => t.api("/v1/conflicts", { token: a.token }),
      "GET /v1/devices": (a) => t.api("/v1/devices", { token: a.token }),
      "GET /v1/status": (a) => t.api("/v1/status", { token: a.token }),
      "GET /v1/audit": (a) => t.api("/v1/audit", { token: a.token }),
    };
    // Written from CONTRACT.md, not derived from the route table under test.
    const expected: Record<string, Record<Actor["role"], number>> = {
      "GET /v1/me": { device: 200, analyst: 200, auditor: 200, admin: 200, operator: 200 },
      "POST /v1/changes": { device: 202, analyst: 403, auditor: 403, admin: 403, operator: 403 },
      "GET /v1/sync": { device: 200, analyst: 403, auditor: 403, admin: 403, operator: 403 },
      "POST /v1/devices": { device: 403, analyst: 403, auditor: 403, admin: 201, operator: 403 },
      "DELETE /v1/devices/{id} (own project)": {
        device: 403,
        analyst: 403,
        auditor: 403,
        admin: 204,
        operator: 403,
      },
      "DELETE /v1/devices/{id} (other project)": {
        device: 403,
        analyst: 403,
        auditor: 403,
        admin: 404,
        operator: 403,
      },
      "POST /v1/members": { device: 403, analyst: 403, auditor: 403, admin: 201, operator: 403 },
      "DELETE /v1/members/{id} (own project)": {
        device: 403,
        analyst: 403,
        auditor: 403,
        admin: 204,
        operator: 403,
      },
      "DELETE /v1/members/{id} (other project)": {
        device: 403,
        analyst: 403,
        auditor: 403,
        admin: 404,
        operator: 403,
      },
      "GET /v1/members": { device: 403, analyst: 200, auditor: 200, admin: 200, operator: 403 },
      "POST /v1/projects": { device: 403, analyst: 403, auditor: 403, admin: 403, operator: 201 },
      "GET /v1/activity": { device: 403, analyst: 403, auditor: 200, admin: 200, operator: 403 },
      "GET /v1/audit/verify": {
        device: 403,
        analyst: 403,
        auditor: 200,
        admin: 200,
        operator: 403,
      },
      "GET /v1/reports": { device: 403, analyst: 200, auditor: 200, admin: 200, operator: 403 },
      "GET /v1/reports/{id} (other project)": {
        device: 403,
        analyst: 404,
        auditor: 404,
        admin: 404,
        operator: 403,
      },
      "GET /v1/reports/{id}/history (other project)": {
        device: 403,
        analyst: 404,
        auditor: 404,
        admin: 404,
        operator: 403,
      },
      "GET /v1/conflicts": { device: 403, analyst: 200, auditor: 200, admin: 200, operator: 403 },
      "GET /v1/devices": { device: 403, analyst: 200, auditor: 200, admin: 200, operator: 403 },
      "GET /v1/status": { device: 403, analyst: 200, auditor: 200, admin: 200, operator: 403 },
      "GET /v1/audit": { device: 403, analyst: 403, auditor: 200, admin: 200, operator: 403 },
    };

    it("answers each cell as the contract says, and never shows another project's data", async () => {
      const actual: Record<string, Record<string, number>> = {};
      const bodies: string[] = [];
      for (const [route, call] of Object.entries(calls)) {
        actual[route] = {};
        for (const actor of Object.values(cast.own)) {
          const res = await call(actor);
          actual[route]![actor.role] = res.status;
          bodies.push(JSON.stringify(res.body ?? null));
        }
      }
      expect(actual).toEqual(expected);
      const foreign = [
        cast.other.projectId,
        cast.other.device.id,
        cast.other.admin.id,
        cast.other.analyst.id,
      ];
      for (const body of bodies) for (const id of foreign) expect(body).not.toContain(id);
      // The other project's device and member survived the attempts on them.
      const survivors = await t.testDb.db.query<{ revoked_at: Date | null }>(
        "select revoked_at from principals where id = any($1::uuid[])",
        [[cast.other.device.id, cast.other.analyst.id]],
      );
      expect(survivors).toEqual([{ revoked_at: null }, { revoked_at: null }]);
      // And the other project's admin sees only its own project.
      const me = await t.api("/v1/me", { token: cast.other.admin.token });
      expect(me.body.project).toBe(cast.other.projectId);
    });
  });

  it("does not let a device push as another device, and audits it as itself", async () => {
    const me = cast.own.device;
    const victim = cast.other.device.id;
    const reportId = crypto.randomUUID();
    const base = { reportId, op: "upsert", fields: { title: "mine" } };
    const res = await t.api("/v1/changes", {
      token: me.token,
      body: {
        changes: [
          {
            ...base,
            changeId: crypto.randomUUID(),
            hlc: formatHlc({ wall: Date.now(), counter: 0, node: victim }),
          },
          {
            ...base,
            changeId: crypto.randomUUID(),
            hlc: formatHlc({ wall: Date.now(), counter: 1, node: me.id }),
            deviceId: victim,
          },
          {
            ...base,
            changeId: crypto.randomUUID(),
            hlc: formatHlc({ wall: Date.now(), counter: 2, node: me.id }),
          },
        ],
      },
    });
    expect(res.status).toBe(202);
    expect(res.body.rejected.map((r: { code: string }) => r.code)).toEqual([
      "hlc_node_mismatch",
      "invalid_change",
    ]);
    expect(res.body.accepted).toHaveLength(1);
    await vi.waitFor(
      async () => {
        const rows = await t.testDb.db.query<{ actor_id: string; project_id: string }>(
          "select actor_id, project_id from audit_log where report_id = $1",
          [reportId],
        );
        expect(rows).toEqual([{ actor_id: me.id, project_id: cast.ownProject }]);
      },
      { timeout: 60_000 },
    );
  });
});
