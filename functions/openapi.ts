import middy from "@middy/core";
import type { APIGatewayProxyResult } from "aws-lambda";
import pkg from "../package.json" with { type: "json" };
import { type DepsOf, lambdaHandler } from "./deps.ts";
import { type ApiEvent, httpErrors, json } from "./http/middleware.ts";
import { buildOpenApiDocument } from "./http/openapi.ts";

let document: unknown;

/** `GET /v1/openapi.json`: the API's OpenAPI 3.1 document, built once per instance. */
export const create = (deps: DepsOf<"openapi">) =>
  middy<ApiEvent, APIGatewayProxyResult>()
    .use(httpErrors(deps.logger))
    .handler(async () => {
      document ??= buildOpenApiDocument(pkg.version);
      return json(200, document, { "cache-control": "public, max-age=300" });
    });

export const handler = lambdaHandler("openapi", create);
