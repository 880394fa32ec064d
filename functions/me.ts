import { UnauthorizedError } from "../core/errors.ts";
import { findPrincipalById } from "./app/identity.ts";
import { type DepsOf, lambdaHandler } from "./deps.ts";
import { apiRoute } from "./http/api-route.ts";
import { json, principalOf } from "./http/middleware.ts";

/** `GET /v1/me`: who the token speaks for. */
export const create = (deps: DepsOf<"me">) =>
  apiRoute(deps).handler(async (event) => {
    const principal = principalOf(event);
    const row = await findPrincipalById(deps.db, principal.sub);
    if (!row || row.revoked_at) throw new UnauthorizedError("These credentials were revoked.");
    return json(200, { id: row.id, name: row.name, role: row.role, project: row.project_id });
  });

export const handler = lambdaHandler("me", create);
