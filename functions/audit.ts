import middy from "@middy/core";
import type { APIGatewayProxyResult } from "aws-lambda";
import { verifyAuditChains } from "./app/audit.ts";
import { type DepsOf, lambdaHandler } from "./deps.ts";
import {
  type ApiEvent,
  authorize,
  httpErrors,
  json,
  principalOf,
  projectOf,
} from "./http/middleware.ts";

/** `GET /v1/audit/verify` (auditor, admin): recomputes the project's hash chains. */
export const create = (deps: DepsOf<"audit">) =>
  middy<ApiEvent, APIGatewayProxyResult>()
    .use(httpErrors(deps.logger))
    .use(authorize())
    .handler(async (event) => {
      const projectId = projectOf(principalOf(event));
      return json(200, await verifyAuditChains(deps.db, projectId));
    });

export const handler = lambdaHandler("audit", create);
