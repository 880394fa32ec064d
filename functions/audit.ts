import * as z from "zod";
import { NotFoundError } from "../core/errors.ts";
import { verifyAuditChains } from "./app/audit.ts";
import { reportEvidence } from "./app/evidence.ts";
import { type DepsOf, lambdaHandler } from "./deps.ts";
import { apiRoute, callerProject } from "./http/api-route.ts";
import { json } from "./http/middleware.ts";

/**
 * The auditors' routes: `GET /v1/audit/verify` recomputes the project's hash
 * chains and checks every signature; `GET /v1/reports/{id}/evidence` exports
 * one report's evidence bundle, to be checked offline.
 */
export const create = (deps: DepsOf<"audit">) =>
  apiRoute(deps).handler(async (event) => {
    const projectId = callerProject(event);
    if (event.resource === "/v1/reports/{id}/evidence") {
      const id = event.pathParameters?.id ?? "";
      if (!z.uuid().safeParse(id).success) throw new NotFoundError("No such report.");
      return json(200, await reportEvidence(deps.db, projectId, id, deps.now));
    }
    return json(200, await verifyAuditChains(deps.db, projectId));
  });

export const handler = lambdaHandler("audit", create);
