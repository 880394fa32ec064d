import type { APIGatewayTokenAuthorizerEvent } from "aws-lambda";
import { SignJWT } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadEvent } from "../local/events.ts";
import { lambdaContext } from "../local/lambda-context.ts";
import { handlerDeps } from "../test/support/deps.ts";
import { apiWildcardArn, create } from "./authorizer.ts";
import { issueToken } from "./lib/auth/tokens.ts";

const principal = {
  sub: "5d6e7f80-1a2b-4c3d-9e8f-0a1b2c3d4e5f",
  project: "8a9b0c1d-2e3f-4a5b-8c6d-7e8f9a0b1c2d",
  role: "device" as const,
};

describe("authorizer (REST API TOKEN authorizer)", () => {
  let env: Awaited<ReturnType<typeof handlerDeps>>;
  let handler: ReturnType<typeof create>;
  const settings = { issuer: "edge-sync", audience: "edge-sync-api", ttlSeconds: 900 };
  beforeAll(async () => {
    env = await handlerDeps();
    handler = create(env.deps);
  });
  afterAll(() => env.stop());

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
