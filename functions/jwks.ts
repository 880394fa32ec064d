import { type DepsOf, lambdaHandler } from "./deps.ts";
import { apiRoute } from "./http/api-route.ts";
import { json } from "./http/middleware.ts";

/** `GET /.well-known/jwks.json`: the public keys tokens are verified with. */
export const create = (deps: DepsOf<"jwks">) =>
  apiRoute(deps, { public: true }).handler(async () =>
    json(200, deps.keys.jwks, { "cache-control": "public, max-age=300" }),
  );

export const handler = lambdaHandler("jwks", create);
