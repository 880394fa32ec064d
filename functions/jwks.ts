import middy from "@middy/core";
import type { APIGatewayProxyResult } from "aws-lambda";
import { type DepsOf, lambdaHandler } from "./deps.ts";
import { type ApiEvent, httpErrors, json } from "./http/middleware.ts";

/** `GET /.well-known/jwks.json`: the public keys tokens are verified with. */
export const create = (deps: DepsOf<"jwks">) =>
  middy<ApiEvent, APIGatewayProxyResult>()
    .use(httpErrors(deps.logger))
    .handler(async () => json(200, deps.keys.jwks, { "cache-control": "public, max-age=300" }));

export const handler = lambdaHandler("jwks", create);
