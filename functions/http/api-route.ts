import middy, { type MiddlewareObj } from "@middy/core";
import type { APIGatewayProxyResult } from "aws-lambda";
import type * as z from "zod";
import { ValidationError } from "../../core/errors.ts";
import type { Runtime } from "../deps.ts";
import {
  type ApiEvent,
  actorOf,
  authorize,
  type BodyLimits,
  httpErrors,
  jsonBody,
  principalOf,
  projectOf,
} from "./middleware.ts";

export { type ApiEvent, json, noContent, principalOf } from "./middleware.ts";

export interface ApiRouteOptions {
  /** A public route: no roles to enforce (the gateway runs no authorizer for it). */
  public?: boolean;
  /** Routes that take a JSON body: its limits. */
  body?: BodyLimits;
  /** Middlewares between the error mapper and authorization (device bookkeeping). */
  use?: MiddlewareObj<ApiEvent, APIGatewayProxyResult>[];
}

/**
 * The chain every API handler starts from: errors mapped to the API's shape
 * (below 500 as they are, the rest as `internal`), the route table's roles
 * enforced, the body parsed within its limits. The handler itself stays a
 * plain async function.
 *
 * @example
 * export const create = (deps: DepsOf<"me">) =>
 *   apiRoute(deps).handler(async (event) => json(200, await whoIs(deps.db, event)));
 */
export function apiRoute(deps: Pick<Runtime, "logger">, options: ApiRouteOptions = {}) {
  let chain = middy<ApiEvent, APIGatewayProxyResult>().use(httpErrors(deps.logger));
  for (const middleware of options.use ?? []) chain = chain.use(middleware);
  if (!options.public) chain = chain.use(authorize());
  if (options.body) chain = chain.use(jsonBody(options.body));
  return chain;
}

/** The caller's project, from the token (every project query is scoped by it). */
export const callerProject = (event: ApiEvent): string => projectOf(principalOf(event));

/** The caller acting in their project: who, where and when the activity log records (`withActivity`). */
export const callerActing = (deps: Pick<Runtime, "now">, event: ApiEvent) => ({
  projectId: callerProject(event),
  actor: actorOf(event),
  now: deps.now,
});

/** The query string, read with its schema; anything else is `validation_failed`, with each issue. */
export function queryOf<T>(schema: z.ZodType<T>, event: ApiEvent): T {
  const parsed = schema.safeParse(event.queryStringParameters ?? {});
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new ValidationError(`${issue.path.join(".") || "query"}: ${issue.message}`, {
      issues: parsed.error.issues.map((i) => ({ path: i.path.join("."), message: i.message })),
    });
  }
  return parsed.data;
}
