import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import fc from "fast-check";
import { base64url, generateKeyPair, importJWK, SignJWT } from "jose";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { formatHlc } from "../core/hlc.ts";
import { type KeyFile, newStoredKey } from "../functions/adapters/auth/keys.ts";
import { type Actor, actors } from "./support/api-actors.ts";
import { startTestCloud, type TestCloud } from "./support/cloud.ts";
import { dbTargets } from "./support/db.ts";

type Cast = Awaited<ReturnType<typeof actors>>;

/**
 * Percent-encodes like encodeURIComponent, but a lone surrogate (which has no
 * UTF-8 form) goes out as the raw, invalid UTF-8 bytes a hostile client
 * would send.
 */
const pct = (s: string) =>
  Array.from(s, (ch) => {
    try {
      return encodeURIComponent(ch);
    } catch {
      return "%ED%A0%80";
    }
  }).join("");

/** Every table's row count and a digest of its rows: equal digests, unchanged database. */
async function fingerprint(t: TestCloud): Promise<Record<string, string>> {
  // token_failures is left out on purpose: recording failed logins is its
  // job; so are the devices' activity and health columns (a refused request
  // is recorded, that the centre sees a device in trouble).
  const tables = [
    "projects",
    "(select id, project_id, name, client_id, secret_hash, created_at, revoked_at from devices)",
    "members",
    "reports",
    "audit_log",
    "conflicts",
    "schema_migrations",
  ];
  const out: Record<string, string> = {};
  for (const table of tables) {
    const [row] = await t.testDb.db.query<{ n: number; h: string }>(
      `select count(*)::int as n, coalesce(md5(string_agg(t::text, '|' order by t::text)), '') as h from ${table} t`,
    );
    out[table.startsWith("(") ? "devices" : table] = `${row!.n}:${row!.h}`;
  }
  return out;
}

const KNOWN_CODES = new Set([
  "invalid_json",
  "validation_failed",
  "unauthorized",
  "forbidden",
  "not_found",
  "unsupported_media_type",
  "payload_too_large",
  "rate_limited",
  "unavailable",
]);

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
          { timeout: 10_000 },
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
      "POST /v1/projects": (a) => t.api("/v1/projects", { token: a.token, body: { name: "m" } }),
      "GET /v1/audit/verify": (a) => t.api("/v1/audit/verify", { token: a.token }),
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
      "POST /v1/projects": { device: 403, analyst: 403, auditor: 403, admin: 403, operator: 201 },
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
      // The other project's device survived the attempts on it.
      const [row] = await t.testDb.db.query<{ revoked_at: Date | null }>(
        "select revoked_at from devices where id = $1",
        [cast.other.device.id],
      );
      expect(row!.revoked_at).toBeNull();
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
      { timeout: 10_000 },
    );
  });

  it("answers at least 200 hostile requests across every route without a 5xx, each error with a stable code, changing nothing", async () => {
    // Let earlier tests' changes land first, then freeze the picture.
    await new Promise((r) => setTimeout(r, 1_000));
    const before = await fingerprint(t);
    const nasty = fc.constantFrom(
      "' OR 1=1 --",
      "'; drop table reports; --",
      "<script>alert(1)</script>",
      "\u0000\u0001\u001f",
      "\ud800",
      // biome-ignore lint/suspicious/noTemplateCurlyInString: a log4j-style lookup, sent literally.
      "${jndi:ldap://x}",
      "../../etc/passwd",
      "𝕏".repeat(300),
    );
    const badJson = fc.constantFrom(
      "{",
      "[1,",
      '{"changes":',
      "nul",
      "\u0000",
      '{"a":1}garbage',
      "{'single':1}",
    );
    const deep = (n: number) => `${'{"a":'.repeat(n)}1${"}".repeat(n)}`;
    const uuidish = fc.oneof(
      fc.uuid(),
      nasty,
      fc.constant("00000000-0000-0000-0000-000000000000"),
      fc.string(),
    );
    const change = fc.record({
      changeId: fc.oneof(fc.uuid(), nasty),
      reportId: uuidish,
      op: fc.constantFrom("upsert", "delete", "merge", "DROP"),
      // Always broken in some way: a valid change must not sneak in.
      hlc: fc.oneof(
        nasty,
        fc.string(),
        fc.constant(
          formatHlc({ wall: Date.now() + 86_400_000, counter: 0, node: cast.own.device.id }),
        ),
      ),
      fields: fc.oneof(
        fc.dictionary(fc.oneof(fc.string(), nasty), fc.jsonValue()),
        nasty,
        fc.constant([]),
      ),
      extra: fc.oneof(nasty, fc.integer()),
    });
    type Req = {
      method: string;
      path: string;
      token?: string;
      body?: string;
      headers?: Record<string, string>;
    };
    const tokens = () =>
      fc.constantFrom(
        cast.own.device.token,
        cast.own.admin.token,
        cast.own.analyst.token,
        cast.own.operator.token,
        undefined,
      );
    const json = (v: unknown) => JSON.stringify(v);
    const req: fc.Arbitrary<Req> = fc.oneof(
      fc.record({
        method: fc.constant("POST"),
        path: fc.constant("/v1/changes"),
        token: fc.constant(cast.own.device.token),
        body: fc.oneof(
          badJson,
          fc.array(change, { minLength: 1, maxLength: 3 }).map((c) => json({ changes: c })),
          fc.constant(json({ changes: [] })),
          fc.constant(json({ changes: "x" })),
          fc.constant(deep(200)),
          nasty.map((s) => json({ changes: [{ changeId: s }] })),
        ),
      }),
      fc.record({
        method: fc.constant("POST"),
        path: fc.constant("/v1/changes"),
        token: fc.constant(cast.own.device.token),
        body: fc.constant("{}"),
        headers: fc.constantFrom(
          { "content-type": "text/plain" },
          { "content-type": "application/x-www-form-urlencoded" },
          { "content-type": "application/jsonp" },
        ),
      }),
      fc.record({
        method: fc.constant("POST"),
        path: fc.constant("/v1/devices"),
        token: tokens(),
        body: fc.oneof(
          badJson,
          nasty.map((s) => json({ name: s, role: "admin" })),
          fc.constant(json({ name: "" })),
          fc.constant(json({ name: 42 })),
          fc.constant(json({ name: "x".repeat(201) })),
          fc.constant(deep(64)),
          nasty.map((s) => json({ nam: s })),
        ),
      }),
      fc.record({
        method: fc.constant("POST"),
        path: fc.constant("/v1/members"),
        token: tokens(),
        body: fc.oneof(
          badJson,
          nasty.map((s) => json({ name: "n", role: s })),
          fc.constant(json({ name: "n", role: "operator" })),
          fc.constant(json({ name: "n", role: "device" })),
          fc.constant(json({ role: "admin" })),
          fc.constant(json([])),
        ),
      }),
      fc.record({
        method: fc.constant("POST"),
        path: fc.constant("/v1/projects"),
        token: fc.constantFrom(cast.own.operator.token, cast.own.admin.token),
        body: fc.oneof(
          badJson,
          fc.constant(json({ name: "" })),
          nasty.map((s) => json({ name: s, admin: true })),
        ),
      }),
      fc.record({
        method: fc.constant("DELETE"),
        path: uuidish.map((id) => `/v1/devices/${pct(id)}`),
        token: tokens(),
      }),
      fc.record({
        method: fc.constant("GET"),
        path: fc.oneof(nasty, fc.string()).map((s) => `/v1/sync?cursor=${pct(s)}`),
        token: tokens(),
      }),
      fc.record({
        method: fc.constant("GET"),
        path: fc.constantFrom(
          "/v1/sync?limit=0",
          "/v1/sync?limit=1001",
          "/v1/sync?limit=abc",
          "/v1/sync?limit=1&limit=x",
          "/v1/sync?evil=1",
          "/v1/sync?cursor=a&cursor=b",
        ),
        token: tokens(),
      }),
      fc.record({
        method: fc.constant("POST"),
        path: fc.constant("/v1/oauth/token"),
        body: fc.oneof(
          badJson,
          nasty.map((s) => `grant_type=client_credentials&client_id=${pct(s)}&client_secret=x`),
          fc.constant("grant_type=password&username=a&password=b"),
          fc.constant("grant_type=client_credentials&grant_type=client_credentials"),
          fc.constant("x".repeat(20_000)),
        ),
        headers: fc.constantFrom(
          { "content-type": "application/x-www-form-urlencoded" },
          { "content-type": "application/json" },
          { "content-type": "text/xml" },
        ),
      }),
      fc.record({
        method: fc.constantFrom("GET", "POST", "DELETE", "PUT", "PATCH"),
        path: fc.constantFrom(
          "/v1/me",
          "/v1/audit/verify",
          "/v1/health",
          "/.well-known/jwks.json",
          "/v1/nope",
          "/v1/devices/../../me",
          "/v1//changes",
        ),
        token: tokens(),
        body: fc.option(badJson, { nil: undefined }),
      }),
      fc.record({
        method: fc.constant("POST"),
        path: fc.constant("/v1/changes"),
        token: fc.constant(cast.own.device.token),
        body: fc.constant(
          json({ changes: Array.from({ length: 501 }, () => ({ changeId: crypto.randomUUID() })) }),
        ),
      }),
      fc.record({
        method: fc.constant("POST"),
        path: fc.constant("/v1/changes"),
        token: fc.constant(cast.own.device.token),
        body: fc.constant(
          json({
            changes: [
              {
                changeId: crypto.randomUUID(),
                reportId: crypto.randomUUID(),
                op: "upsert",
                hlc: "x",
                fields: { big: "x".repeat(6 * 1024 * 1024) },
              },
            ],
          }),
        ),
      }),
    );
    const readers = fc.constantFrom(
      cast.own.analyst.token,
      cast.own.admin.token,
      cast.own.device.token,
    );
    const reads: fc.Arbitrary<Req> = fc.record({
      method: fc.constant("GET"),
      token: readers,
      path: fc.oneof(
        nasty.map((s) => `/v1/reports?q=${pct(s)}`),
        fc.constantFrom(
          "/v1/reports?updatedAfter=yesterday",
          "/v1/reports?deleted=maybe",
          "/v1/reports?limit=201",
          "/v1/reports?limit=-1",
          "/v1/reports?cursor=%7B%7D",
          "/v1/reports?q=",
          "/v1/reports?q=a&q=b&unknown=1",
          "/v1/conflicts?after=2026-13-45T00:00:00Z",
          "/v1/audit?before=not-a-time",
          "/v1/devices?extra=1",
          "/v1/status?x=y",
        ),
        uuidish.map((s) => `/v1/reports/${pct(s)}`),
        uuidish.map((s) => `/v1/reports/${pct(s)}/history`),
        uuidish.map((s) => `/v1/conflicts?reportId=${pct(s)}`),
        uuidish.map((s) => `/v1/audit?actor=${pct(s)}`),
      ),
    });
    const requests = fc.sample(
      fc.oneof({ weight: 4, arbitrary: req }, { weight: 1, arbitrary: reads }),
      {
        numRuns: 260,
        seed: 20261122,
      },
    );

    let checked = 0;
    for (const r of requests) {
      const res = await fetch(`${t.cloud.url}${r.path}`, {
        method: r.method,
        headers: {
          ...(r.body !== undefined ? { "content-type": "application/json" } : {}),
          ...(r.token ? { authorization: `Bearer ${r.token}` } : {}),
          ...r.headers,
        },
        body: r.method === "GET" ? undefined : r.body,
      });
      const text = await res.text();
      const context = `${r.method} ${r.path.slice(0, 80)} → ${res.status} ${text.slice(0, 200)}`;
      expect(res.status, context).toBeLessThan(500);
      if (res.status >= 400) {
        const body = JSON.parse(text);
        if (r.path === "/v1/oauth/token" && res.status !== 404) {
          expect(
            ["invalid_request", "invalid_client", "unsupported_grant_type", "rate_limited"],
            context,
          ).toContain(body.error);
        } else {
          expect(KNOWN_CODES.has(body.error?.code), context).toBe(true);
        }
      }
      if (res.status === 202) expect(JSON.parse(text).accepted, context).toEqual([]);
      checked++;
    }
    expect(checked).toBeGreaterThanOrEqual(200);
    expect(await fingerprint(t)).toEqual(before);
  }, 120_000);
});
