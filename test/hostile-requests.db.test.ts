import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { formatHlc } from "../core/hlc.ts";
import { actors } from "./support/api-actors.ts";
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
  // is recorded, that the centre sees a device in trouble), and the tallies
  // (a read moves them up to its snapshot; their counts stay the same).
  const tables = [
    "projects",
    "(select id, project_id, name, client_id, secret_hash, created_at, revoked_at from devices)",
    "members",
    "reports",
    "audit_log",
    "conflicts",
    "audit_chains",
    "activity_log",
    "device_scope_log",
    "erasures",
    "erasure_acks",
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

describe.each(dbTargets())("hostile requests (%s)", (target) => {
  let t: TestCloud;
  let cast: Cast;
  beforeAll(async () => {
    t = await startTestCloud(target);
    cast = await actors(t);
  });
  afterAll(() => t.stop());

  it("answers at least 200 hostile requests across every route without a 5xx, each error with a stable code, changing nothing", async () => {
    // actors() waited for its change to be applied: nothing else is on its way.
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
  });
});
