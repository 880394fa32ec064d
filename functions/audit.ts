import { verifyAuditChains } from "./app/audit.ts";
import { type DepsOf, lambdaHandler } from "./deps.ts";
import { apiRoute, callerProject } from "./http/api-route.ts";
import { json } from "./http/middleware.ts";

/** `GET /v1/audit/verify` (auditor, admin): recomputes the project's hash chains. */
export const create = (deps: DepsOf<"audit">) =>
  apiRoute(deps).handler(async (event) => {
    const projectId = callerProject(event);
    return json(200, await verifyAuditChains(deps.db, projectId));
  });

export const handler = lambdaHandler("audit", create);
