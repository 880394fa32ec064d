import type { APIGatewayProxyEvent } from "aws-lambda";
import { decodeProtectedHeader, jwtVerify } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadEvent } from "../local/events.ts";
import { lambdaContext } from "../local/lambda-context.ts";
import { createTestDb, type TestDb } from "../test/support/db.ts";
import { handlerDeps } from "../test/support/deps.ts";
import { seedProject } from "../test/support/fixtures.ts";
import { createDevice } from "./app/identity.ts";
import { create } from "./token.ts";

describe("token (POST /v1/oauth/token)", () => {
  let t: TestDb;
  let env: Awaited<ReturnType<typeof handlerDeps>>;
  let handler: ReturnType<typeof create>;
  let device: { id: string; clientId: string; clientSecret: string };
  beforeAll(async () => {
    t = await createTestDb("pglite");
    env = await handlerDeps(t.db);
    handler = create(env.deps);
    const { project } = await seedProject(t.db, 0);
    device = await createDevice(t.db, project.id, "truck");
  });
  afterAll(async () => {
    await env.stop();
    await t.drop();
  });

  const request = async (body: string, headers: Record<string, string> = {}) => {
    const event = await loadEvent<APIGatewayProxyEvent>("events/api/post-token.json");
    event.body = body;
    event.headers = { ...event.headers, ...headers };
    const res = await handler(event, lambdaContext("token", "test"));
    return { status: res.statusCode, body: JSON.parse(res.body), headers: res.headers ?? {} };
  };
  const form = (p: Record<string, string>) => new URLSearchParams(p).toString();

  it("issues an ES256 token with kid, 15-minute expiry and the device's claims (form body)", async () => {
    const res = await request(
      form({
        grant_type: "client_credentials",
        client_id: device.clientId,
        client_secret: device.clientSecret,
      }),
    );
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ token_type: "Bearer", expires_in: 900 });
    expect(res.headers["cache-control"]).toBe("no-store");
    const header = decodeProtectedHeader(res.body.access_token);
    expect(header).toMatchObject({ alg: "ES256", kid: env.deps.keys.signing.kid });
    const { payload } = await jwtVerify(res.body.access_token, env.deps.keys.resolveKey, {
      issuer: "edge-sync",
      audience: "edge-sync-api",
    });
    expect(payload).toMatchObject({ sub: device.id, role: "device", jti: expect.any(String) });
    expect(payload.exp! - payload.iat!).toBe(900);
  });

  it("accepts HTTP Basic client authentication and JSON bodies", async () => {
    const basic = Buffer.from(`${device.clientId}:${device.clientSecret}`).toString("base64");
    expect(
      (await request("grant_type=client_credentials", { Authorization: `Basic ${basic}` })).status,
    ).toBe(200);
    const json = JSON.stringify({
      grant_type: "client_credentials",
      client_id: device.clientId,
      client_secret: device.clientSecret,
    });
    expect((await request(json, { "Content-Type": "application/json" })).status).toBe(200);
  });

  it.each([
    [
      "a wrong secret",
      () =>
        form({
          grant_type: "client_credentials",
          client_id: device.clientId,
          client_secret: "nope",
        }),
      401,
      "invalid_client",
    ],
    [
      "an unknown client",
      () =>
        form({ grant_type: "client_credentials", client_id: "dev_unknown", client_secret: "x" }),
      401,
      "invalid_client",
    ],
    [
      "another grant type",
      () => form({ grant_type: "password", client_id: device.clientId, client_secret: "x" }),
      400,
      "unsupported_grant_type",
    ],
    [
      "no grant type",
      () => form({ client_id: device.clientId, client_secret: device.clientSecret }),
      400,
      "invalid_request",
    ],
    [
      "a repeated parameter",
      () =>
        `${form({ grant_type: "client_credentials", client_id: device.clientId, client_secret: device.clientSecret })}&client_id=x`,
      400,
      "invalid_request",
    ],
  ])("refuses %s in RFC 6749 §5.2 form", async (_, body, status, error) => {
    const res = await request(body());
    expect(res.status).toBe(status);
    expect(res.body).toEqual({ error, error_description: expect.any(String) });
    expect(JSON.stringify(res.body)).not.toContain(device.clientSecret);
  });

  it("makes a client that keeps failing wait (429 with Retry-After), and lets it in after", async () => {
    const { project } = await seedProject(t.db, 0);
    const victim = await createDevice(t.db, project.id, "target");
    const attempt = (secret: string) =>
      request(
        form({
          grant_type: "client_credentials",
          client_id: victim.clientId,
          client_secret: secret,
        }),
      );
    for (let i = 0; i < 10; i++) expect((await attempt(`guess ${i}`)).status).toBe(401);
    const limited = await attempt(victim.clientSecret);
    expect(limited.status).toBe(429);
    expect(Number(limited.headers["retry-after"])).toBeGreaterThan(0);
    // The window over, the right secret works again.
    await t.db.query("update token_failures set window_start = now() - interval '16 minutes'");
    expect((await attempt(victim.clientSecret)).status).toBe(200);
  });
});
