import type { APIGatewayProxyEvent } from "aws-lambda";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadEvent } from "../local/events.ts";
import { lambdaContext } from "../local/lambda-context.ts";
import { handlerDeps } from "../test/support/deps.ts";
import { create } from "./dashboard.ts";

describe("dashboard (GET /) behind a stage path", () => {
  let env: Awaited<ReturnType<typeof handlerDeps>>;
  let handler: ReturnType<typeof create>;
  beforeAll(async () => {
    env = await handlerDeps();
    handler = create(env.deps);
  });
  afterAll(() => env.stop());

  const get = async (resource: string, requestPath: string) => {
    const event = await loadEvent<APIGatewayProxyEvent>("events/api/get-dashboard.json");
    event.resource = resource;
    event.path = resource;
    event.requestContext.path = requestPath;
    return handler(event, lambdaContext("dashboard", "test"));
  };

  it("links its script, stylesheet and API calls relative to the page", async () => {
    const res = await get("/", "/prod/");
    expect(res.statusCode).toBe(200);
    expect(res.body).toContain('src="dashboard.js"');
    expect(res.body).toContain('href="dashboard.css"');
    const js = await get("/dashboard.js", "/prod/dashboard.js");
    expect(js.body).toContain('fetch("v1/oauth/token"');
    expect(js.body).not.toMatch(/["'`]\/v1\//);
  });

  it("sends /prod to /prod/, so relative links resolve under the stage", async () => {
    const res = await get("/", "/prod");
    expect(res.statusCode).toBe(301);
    expect(res.headers?.location).toBe("/prod/");
    expect(res.headers?.["strict-transport-security"]).toBeDefined();
  });

  it("serves the page at a domain's root without redirecting", async () => {
    expect((await get("/", "/")).statusCode).toBe(200);
  });
});
