import { join } from "node:path";
import { Ajv2020 } from "ajv/dist/2020.js";
import addFormats from "ajv-formats";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { checkEvidence } from "../core/evidence.ts";
import { formatHlc } from "../core/hlc.ts";
import { newDeviceKey } from "../core/signature.ts";
import { EdgeAgent } from "../edge-agent/agent.ts";
import { routes } from "../functions/routes.ts";
import { startTestCloud, syncUntilSettled, type TestCloud } from "./support/cloud.ts";

interface OpenApiDoc {
  openapi: string;
  paths: Record<
    string,
    Record<string, { responses: Record<string, { content?: Record<string, unknown> }> }>
  >;
}

const pointer = (...parts: string[]) =>
  parts.map((p) => p.replace(/~/g, "~0").replace(/\//g, "~1")).join("/");

/**
 * Checks real responses against the OpenAPI document the API serves: the
 * status must be documented for the route, the content type too, and a JSON
 * body must match the documented schema.
 */
function contract(doc: OpenApiDoc) {
  const ajv = new Ajv2020({ strict: false, validateSchema: false, allErrors: true });
  addFormats.default(ajv);
  ajv.addSchema(doc, "openapi.json");
  const seen = new Set<string>();

  function check(method: string, template: string, status: number, type: string, body: unknown) {
    const operation = doc.paths[template]?.[method.toLowerCase()];
    if (!operation) return [`${method} ${template} is not documented`];
    const response = operation.responses[String(status)];
    if (!response) return [`${method} ${template} answered ${status}, which is not documented`];
    seen.add(`${method} ${template} ${status}`);
    if (!response.content) return body === undefined ? [] : [`${status} documents no body`];
    const mediaType = type.split(";")[0]!.trim();
    if (!(mediaType in response.content)) return [`content type ${mediaType} is not documented`];
    if (mediaType !== "application/json") return [];
    const validate = ajv.getSchema(
      `openapi.json#/${pointer("paths", template, method.toLowerCase(), "responses", String(status), "content", mediaType, "schema")}`,
    )!;
    return validate(body)
      ? []
      : (validate.errors ?? []).map(
          (e) => `${e.instancePath || "body"} ${e.message} ${JSON.stringify(e.params)}`,
        );
  }
  return { check, seen };
}

describe("the OpenAPI document and the API agree", () => {
  let t: TestCloud;
  let doc: OpenApiDoc;
  let c: ReturnType<typeof contract>;
  const problems: string[] = [];
  const agents: EdgeAgent[] = [];

  /** Calls a route by its template, records what the contract says of the answer. */
  async function call(
    method: "GET" | "POST" | "PUT" | "PATCH" | "DELETE",
    template: string,
    init: {
      token?: string;
      params?: Record<string, string>;
      query?: Record<string, string>;
      body?: unknown;
      headers?: Record<string, string>;
    } = {},
    // biome-ignore lint/suspicious/noExplicitAny: bodies are checked against the document.
  ): Promise<{ status: number; body: any }> {
    let path = template.replace(/\{(\w+)\}/g, (_, name: string) => init.params?.[name] ?? "");
    if (init.query) path += `?${new URLSearchParams(init.query)}`;
    const response = await fetch(`${t.cloud.url}${path}`, {
      method,
      headers: {
        ...(init.body === undefined ? {} : { "content-type": "application/json" }),
        ...(init.token ? { authorization: `Bearer ${init.token}` } : {}),
        ...init.headers,
      },
      body:
        init.body === undefined
          ? undefined
          : typeof init.body === "string"
            ? init.body
            : JSON.stringify(init.body),
    });
    const text = await response.text();
    const type = response.headers.get("content-type") ?? "";
    const body = text && type.startsWith("application/json") ? JSON.parse(text) : text || undefined;
    for (const problem of c.check(method, template, response.status, type, body)) {
      problems.push(`${method} ${path} → ${response.status}: ${problem}`);
    }
    return { status: response.status, body };
  }

  const token = async (clientId: string, clientSecret: string) => {
    const res = await call("POST", "/v1/oauth/token", {
      body: { grant_type: "client_credentials", client_id: clientId, client_secret: clientSecret },
    });
    expect(res.status).toBe(200);
    return res.body.access_token as string;
  };

  beforeAll(async () => {
    t = await startTestCloud("pglite");
    doc = (await t.api("/v1/openapi.json")).body;
    c = contract(doc);
  });
  afterAll(async () => {
    for (const agent of agents) agent.close();
    await t?.stop();
  });

  it("serves an OpenAPI 3.1 document with every route of the route table", async () => {
    expect(doc.openapi).toBe("3.1.0");
    const documented = Object.entries(doc.paths).flatMap(([path, item]) =>
      Object.keys(item).map((method) => `${method.toUpperCase()} ${path}`),
    );
    expect(documented.sort()).toEqual(routes.map((r) => `${r.method} ${r.path}`).sort());
  });

  it("rejects a response that drifts from it", () => {
    const report = {
      id: crypto.randomUUID(),
      fields: {},
      clocks: {},
      deleted: false,
      version: 1,
      createdAt: new Date().toISOString(),
      updatedAt: new Date().toISOString(),
      createdBy: null,
      updatedBy: null,
    };
    const type = "application/json";
    expect(c.check("GET", "/v1/reports/{id}", 200, type, report)).toEqual([]);
    const { version: _, ...withoutVersion } = report;
    expect(c.check("GET", "/v1/reports/{id}", 200, type, withoutVersion)).not.toEqual([]);
    expect(c.check("GET", "/v1/reports/{id}", 200, type, { ...report, extra: 1 })).not.toEqual([]);
    expect(c.check("GET", "/v1/reports/{id}", 418, type, report)).not.toEqual([]);
    expect(c.check("GET", "/v1/reports/{id}", 200, "text/plain", "x")).not.toEqual([]);
  });

  it("every route's real responses, successes and errors, match the document", async () => {
    const { credentials } = t.cloud;
    const demo = credentials.projects.demo!;
    const admin = await token(demo.admin.clientId, demo.admin.clientSecret);
    const operator = await token(credentials.operator.clientId, credentials.operator.clientSecret);

    // Identity and the public routes.
    await call("GET", "/.well-known/jwks.json");
    await call("GET", "/v1/health");
    await call("GET", "/v1/openapi.json");
    for (const file of ["/", "/dashboard.js", "/dashboard.css"]) await call("GET", file);
    expect(
      (await call("POST", "/v1/oauth/token", { body: { grant_type: "password" } })).status,
    ).toBe(400);
    const wrong = { grant_type: "client_credentials", client_id: demo.admin.clientId };
    for (let i = 0; i < 10; i++) {
      const res = await call("POST", "/v1/oauth/token", {
        body: { ...wrong, client_secret: `wrong-${i}` },
      });
      expect(res.status).toBe(401);
    }
    expect(
      (await call("POST", "/v1/oauth/token", { body: { ...wrong, client_secret: "again" } }))
        .status,
    ).toBe(429);
    expect((await call("GET", "/v1/me")).status).toBe(401);

    // Management.
    const members: Record<string, string> = {};
    for (const role of ["analyst", "auditor"]) {
      const res = await call("POST", "/v1/members", {
        token: admin,
        body: { name: `an ${role}`, role },
      });
      expect(res.status).toBe(201);
      members[role] = await token(res.body.clientId, res.body.clientSecret);
    }
    const analyst = members.analyst!;
    const auditor = members.auditor!;
    const project = await call("POST", "/v1/projects", { token: operator, body: { name: "west" } });
    expect(project.status).toBe(201);
    expect(
      (await call("POST", "/v1/devices", { token: analyst, body: { name: "x" } })).status,
    ).toBe(403);
    expect((await call("POST", "/v1/devices", { token: admin, body: { nom: "x" } })).status).toBe(
      400,
    );
    expect((await call("POST", "/v1/devices", { token: admin, body: "{" })).status).toBe(400);
    const plain = { token: admin, body: "name", headers: { "content-type": "text/plain" } };
    expect((await call("POST", "/v1/devices", plain)).status).toBe(415);
    const spare = await call("POST", "/v1/devices", { token: admin, body: { name: "spare" } });
    expect(spare.status).toBe(201);
    const deviceToken = await token(spare.body.clientId, spare.body.clientSecret);
    await call("GET", "/v1/me", { token: deviceToken });

    // A device registers its signing key once: a second time, or a private key, is refused.
    const keyed = await call("POST", "/v1/devices", { token: admin, body: { name: "keyed" } });
    const keyedToken = await token(keyed.body.clientId, keyed.body.clientSecret);
    const { privateJwk, publicJwk } = newDeviceKey();
    const key = (publicKey: unknown) =>
      call("POST", "/v1/devices/me/key", { token: keyedToken, body: { publicKey } });
    expect((await key(privateJwk)).status).toBe(400);
    expect((await key(publicJwk)).status).toBe(201);
    expect((await key(publicJwk)).status).toBe(201); // the same key again: a retry
    expect((await key(newDeviceKey().publicJwk)).status).toBe(409);
    expect((await call("POST", "/v1/devices/me/key", { token: admin, body: {} })).status).toBe(403);

    // Two agents edit the same field offline: a conflict.
    const agent = async (name: string) => {
      const res = await call("POST", "/v1/devices", { token: admin, body: { name } });
      const opened = EdgeAgent.open(join(t.dir, `${name}.db`));
      agents.push(opened);
      await opened.init(t.cloud.url, res.body.clientId, res.body.clientSecret);
      return { agent: opened, token: await token(res.body.clientId, res.body.clientSecret) };
    };
    const a = await agent("north");
    const b = await agent("south");
    const report = a.agent.create({ title: "Pump station 4", crew: 3 });
    await syncUntilSettled(a.agent);
    await b.agent.syncOnce();
    b.agent.update(report.id, { title: "Pump station 4, flooded" });
    await new Promise((r) => setTimeout(r, 50));
    a.agent.update(report.id, { title: "Pump station 4, closed" });
    await syncUntilSettled(a.agent);
    await syncUntilSettled(b.agent);

    // Sync, by hand, as a device: accepted, rejected, then the page.
    const pushed = await call("POST", "/v1/changes", {
      token: deviceToken,
      body: {
        changes: [
          {
            changeId: crypto.randomUUID(),
            reportId: crypto.randomUUID(),
            op: "upsert",
            hlc: formatHlc({ wall: Date.now(), counter: 0, node: spare.body.id }),
            fields: { title: "Culvert 9" },
          },
          { changeId: crypto.randomUUID(), reportId: report.id, op: "upsert", hlc: "nope" },
        ],
      },
    });
    expect(pushed.status).toBe(202);
    expect(pushed.body.accepted).toHaveLength(1);
    expect(pushed.body.rejected).toHaveLength(1);
    expect((await call("POST", "/v1/changes", { token: deviceToken, body: {} })).status).toBe(400);
    const big = JSON.stringify({ changes: [{ pad: "x".repeat(6 * 1024 * 1024) }] });
    expect((await call("POST", "/v1/changes", { token: deviceToken, body: big })).status).toBe(413);
    const synced = await call("GET", "/v1/sync", { token: deviceToken, query: { limit: "50" } });
    expect(synced.status).toBe(200);
    expect(synced.body.reports.length).toBeGreaterThan(0);
    const seenByA = await call("GET", "/v1/sync", { token: a.token });
    expect(seenByA.body.acks.length).toBeGreaterThan(0);
    expect(seenByA.body.conflicts).toHaveLength(1);
    expect(
      (await call("GET", "/v1/sync", { token: deviceToken, query: { limit: "0" } })).status,
    ).toBe(400);

    // Read.
    const found = await call("GET", "/v1/reports", { token: analyst, query: { q: "pump" } });
    expect(found.body.items.map((r: { id: string }) => r.id)).toEqual([report.id]);
    await call("GET", "/v1/reports", { token: analyst, query: { deleted: "any", limit: "1" } });
    expect(
      (await call("GET", "/v1/reports", { token: analyst, query: { limit: "x" } })).status,
    ).toBe(400);
    await call("GET", "/v1/reports/{id}", { token: analyst, params: { id: report.id } });
    const missing = { id: crypto.randomUUID() };
    expect(
      (await call("GET", "/v1/reports/{id}", { token: analyst, params: missing })).status,
    ).toBe(404);
    const history = await call("GET", "/v1/reports/{id}/history", {
      token: analyst,
      params: { id: report.id },
    });
    expect(history.body.items.length).toBeGreaterThanOrEqual(3);
    const conflicts = await call("GET", "/v1/conflicts", { token: analyst });
    expect(conflicts.body.items).toHaveLength(1);
    const devices = await call("GET", "/v1/devices", { token: admin });
    expect(devices.body.items.length).toBeGreaterThanOrEqual(3);
    const people = await call("GET", "/v1/members", { token: analyst });
    expect(people.body.items.map((m: { role: string }) => m.role)).toEqual([
      "admin",
      "analyst",
      "auditor",
    ]);
    await call("GET", "/v1/status", { token: analyst });
    const audit = await call("GET", "/v1/audit", { token: auditor, query: { limit: "2" } });
    expect(audit.body.nextCursor).not.toBeNull();
    expect((await call("GET", "/v1/audit", { token: analyst })).status).toBe(403);
    expect((await call("GET", "/v1/audit/verify", { token: auditor })).body.ok).toBe(true);
    const activity = await call("GET", "/v1/activity", { token: auditor, query: { limit: "1" } });
    // The demo project's log begins with its creation.
    expect(activity.body.items[0]).toMatchObject({ action: "project.create", prevHash: null });
    expect((await call("GET", "/v1/activity", { token: analyst })).status).toBe(403);
    const evidence = (token: string, id: string) =>
      call("GET", "/v1/reports/{id}/evidence", { token, params: { id } });
    expect(checkEvidence((await evidence(auditor, report.id)).body)).toMatchObject({ ok: true });
    expect((await evidence(analyst, report.id)).status).toBe(403);
    expect((await evidence(auditor, crypto.randomUUID())).status).toBe(404);

    // A data-protection erasure, and how far the devices are with it.
    const erased = await call("POST", "/v1/erasures", {
      token: admin,
      body: { reportId: report.id, fields: ["crew"], reason: "request 7" },
    });
    expect(erased.status).toBe(201);
    await call("GET", "/v1/erasures/{id}", { token: auditor, params: { id: erased.body.id } });
    const held = await call("PUT", "/v1/reports/{id}/hold", {
      token: auditor,
      params: { id: report.id },
      body: { reason: "case 12" },
    });
    expect(held.status).toBe(200);
    const blocked = await call("POST", "/v1/erasures", {
      token: admin,
      body: { reportId: report.id, reason: "request 8" },
    });
    expect(blocked.status).toBe(409);
    const lifted = await call("DELETE", "/v1/reports/{id}/hold", {
      token: auditor,
      params: { id: report.id },
    });
    expect(lifted.status).toBe(204);
    const retention = await call("PATCH", "/v1/project", {
      token: admin,
      body: { retainDeletedDays: 365 },
    });
    expect(retention.body).toEqual({ id: expect.any(String), retainDeletedDays: 365 });
    expect(
      (await call("PATCH", "/v1/project", { token: admin, body: { retainDeletedDays: -1 } }))
        .status,
    ).toBe(400);
    expect(
      (await call("POST", "/v1/erasures", { token: admin, body: { reason: "no report" } })).status,
    ).toBe(400);
    expect(
      (
        await call("GET", "/v1/erasures/{id}", {
          token: auditor,
          params: { id: crypto.randomUUID() },
        })
      ).status,
    ).toBe(404);

    // Fleet operations (the dead-letter queue's own story is in stuck.db.test.ts).
    expect((await call("GET", "/v1/dlq", { token: admin })).body.items).toEqual([]);
    expect((await call("GET", "/v1/dlq", { token: analyst })).status).toBe(403);
    const redrive = await call("POST", "/v1/dlq/redrive", { token: admin, body: {} });
    expect(redrive.body.moved).toBe(0);
    expect(
      (await call("POST", "/v1/dlq/redrive", { token: admin, body: { messageIds: [] } })).status,
    ).toBe(400);

    // Scopes: set, checked, refused for another project's device or a bad name.
    const scoped = await call("PUT", "/v1/devices/{id}/scopes", {
      token: admin,
      params: { id: spare.body.id },
      body: { scopes: ["site-2", "site-1", "site-2"] },
    });
    expect(scoped.body).toEqual({ id: spare.body.id, scopes: ["site-1", "site-2"] });
    expect(
      (
        await call("PUT", "/v1/devices/{id}/scopes", {
          token: admin,
          params: { id: spare.body.id },
          body: { scopes: ["tab\there"] },
        })
      ).status,
    ).toBe(400);
    expect(
      (
        await call("PUT", "/v1/devices/{id}/scopes", {
          token: admin,
          params: missing,
          body: { scopes: [] },
        })
      ).status,
    ).toBe(404);
    expect(
      (
        await call("PUT", "/v1/devices/{id}/scopes", {
          token: analyst,
          params: { id: spare.body.id },
          body: { scopes: [] },
        })
      ).status,
    ).toBe(403);
    const settings = await call("GET", "/v1/devices/{id}/scopes", {
      token: admin,
      params: { id: spare.body.id },
    });
    expect(settings.body.items).toMatchObject([{ version: 1, scopes: ["site-1", "site-2"] }]);
    expect(
      (await call("GET", "/v1/devices/{id}/scopes", { token: admin, params: missing })).status,
    ).toBe(404);
    expect(
      (
        await call("GET", "/v1/devices/{id}/scopes", {
          token: analyst,
          params: { id: spare.body.id },
        })
      ).status,
    ).toBe(403);

    // Revocation last: the spare device's token is not used after it.
    const revoke = { token: admin, params: { id: spare.body.id } };
    expect((await call("DELETE", "/v1/devices/{id}", revoke)).status).toBe(204);
    expect(
      (await call("DELETE", "/v1/devices/{id}", { token: admin, params: missing })).status,
    ).toBe(404);
    const leaving = await call("POST", "/v1/members", {
      token: admin,
      body: { name: "leaving", role: "analyst" },
    });
    const leave = { token: admin, params: { id: leaving.body.id } };
    expect((await call("DELETE", "/v1/members/{id}", leave)).status).toBe(204);
    const self = { token: admin, params: { id: people.body.items[0].id } };
    const last = await call("DELETE", "/v1/members/{id}", self);
    expect([last.status, last.body.error.code]).toEqual([409, "last_admin"]);
    expect(
      (await call("DELETE", "/v1/members/{id}", { token: admin, params: missing })).status,
    ).toBe(404);

    expect(problems).toEqual([]);
    // Every route answered at least once with its documented success.
    const succeeded = new Set(
      [...c.seen].filter((k) => /\s2\d\d$/.test(k)).map((k) => k.replace(/\s\d+$/, "")),
    );
    expect([...succeeded].sort()).toEqual(routes.map((r) => `${r.method} ${r.path}`).sort());
  });
});
