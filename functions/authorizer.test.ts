import type { APIGatewayTokenAuthorizerEvent } from "aws-lambda";
import { SignJWT } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadEvent } from "../local/events.ts";
import { lambdaContext } from "../local/lambda-context.ts";
import { createTestDb, type TestDb } from "../test/support/db.ts";
import { handlerDeps } from "../test/support/deps.ts";
import { seedProject } from "../test/support/fixtures.ts";
import { issueToken } from "./adapters/auth/tokens.ts";
import { revokeDevice } from "./app/identity.ts";
import { apiWildcardArn, create } from "./authorizer.ts";

/** Filled in with a real device once the database exists. */
const principal = { sub: "", project: "", role: "device" as const };

describe("authorizer (REST API TOKEN authorizer)", () => {
  let env: Awaited<ReturnType<typeof handlerDeps>>;
  let handler: ReturnType<typeof create>;
  let t: TestDb;
  const settings = { issuer: "edge-sync", audience: "edge-sync-api", ttlSeconds: 900 };
  beforeAll(async () => {
    t = await createTestDb("pglite");
    const { project, devices } = await seedProject(t.db, 2);
    Object.assign(principal, { sub: devices[0]!.id, project: project.id });
    env = await handlerDeps(t.db);
    handler = create(env.deps);
  });
  afterAll(async () => {
    await env.stop();
    await t.drop();
  });

  const authorize = async (authorizationToken: string) => {
    const event = await loadEvent<APIGatewayTokenAuthorizerEvent>("events/authorizer/token.json");
    return handler({ ...event, authorizationToken }, lambdaContext("authorizer", "test"));
  };

  it("allows a valid token on every route of the stage and passes sub, project and role on", async () => {
    const token = await issueToken(env.deps.keys, settings, principal);
    const result = await authorize(`Bearer ${token}`);
    expect(result.principalId).toBe(principal.sub);
    expect(result.context).toEqual({
      sub: principal.sub,
      project: principal.project,
      role: "device",
    });
    expect(result.policyDocument.Statement).toEqual([
      {
        Action: "execute-api:Invoke",
        Effect: "Allow",
        Resource: "arn:aws:execute-api:eu-west-1:123456789012:abc123/prod/*/*",
      },
    ]);
  });

  it("refuses a valid token whose device was revoked", async () => {
    const { project, devices } = await seedProject(t.db, 1);
    const revoked = { ...principal, sub: devices[0]!.id, project: project.id };
    const token = await issueToken(env.deps.keys, settings, revoked);
    await expect(authorize(`Bearer ${token}`)).resolves.toMatchObject({ principalId: revoked.sub });
    await revokeDevice(t.db, revoked.project, revoked.sub);
    await expect(authorize(`Bearer ${token}`)).rejects.toThrow("Unauthorized");
  });

  it("builds the cached policy's wildcard from any method ARN", () => {
    expect(apiWildcardArn("arn:aws:execute-api:us-east-1:1:api9/live/GET/v1/reports/abc")).toBe(
      "arn:aws:execute-api:us-east-1:1:api9/live/*/*",
    );
  });

  const sign = (
    claims: Record<string, unknown>,
    { exp = 600, aud = "edge-sync-api", iss = "edge-sync" } = {},
  ) => {
    const now = Math.floor(Date.now() / 1000);
    return new SignJWT({ project: principal.project, role: "device", ...claims })
      .setProtectedHeader({ alg: "ES256", kid: env.deps.keys.signing.kid })
      .setSubject(principal.sub)
      .setIssuer(iss)
      .setAudience(aud)
      .setIssuedAt(now - 10)
      .setExpirationTime(now + exp)
      .setJti(crypto.randomUUID())
      .sign(env.deps.keys.signing.key);
  };

  it.each([
    ["no Bearer prefix", async () => await issueToken(env.deps.keys, settings, principal)],
    ["garbage", async () => "Bearer abc.def.ghi"],
    ["an expired token", async () => `Bearer ${await sign({}, { exp: -60 })}`],
    ["another audience", async () => `Bearer ${await sign({}, { aud: "someone-else" })}`],
    ["another issuer", async () => `Bearer ${await sign({}, { iss: "evil" })}`],
    ["an unknown role", async () => `Bearer ${await sign({ role: "root" })}`],
  ])("answers Unauthorized (401) for %s", async (_, token) => {
    await expect(authorize(await token())).rejects.toThrow("Unauthorized");
  });
});
