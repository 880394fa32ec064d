import pkg from "../package.json" with { type: "json" };
import { type DepsOf, lambdaHandler } from "./deps.ts";
import { apiRoute } from "./http/api-route.ts";
import { json } from "./http/middleware.ts";
import { buildOpenApiDocument } from "./http/openapi.ts";

let document: unknown;

/** `GET /v1/openapi.json`: the API's OpenAPI 3.1 document, built once per instance. */
export const create = (deps: DepsOf<"openapi">) =>
  apiRoute(deps, { public: true }).handler(async () => {
    document ??= buildOpenApiDocument(pkg.version);
    return json(200, document, { "cache-control": "public, max-age=300" });
  });

export const handler = lambdaHandler("openapi", create);
