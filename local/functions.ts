import type { APIGatewayProxyEvent, APIGatewayProxyResult } from "aws-lambda";
import * as audit from "../functions/audit.ts";
import * as authorizer from "../functions/authorizer.ts";
import * as consume from "../functions/consume.ts";
import * as dashboard from "../functions/dashboard.ts";
import type { Deps, Handler } from "../functions/deps.ts";
import * as dlq from "../functions/dlq.ts";
import * as health from "../functions/health.ts";
import * as ingest from "../functions/ingest.ts";
import * as jwks from "../functions/jwks.ts";
import * as manage from "../functions/manage.ts";
import * as me from "../functions/me.ts";
import * as openapi from "../functions/openapi.ts";
import * as read from "../functions/read.ts";
import * as retention from "../functions/retention.ts";
import type { ApiFunction } from "../functions/routes.ts";
import * as sync from "../functions/sync.ts";
import * as token from "../functions/token.ts";

export type ApiHandler = Handler<APIGatewayProxyEvent, APIGatewayProxyResult>;

/** Every API function's factory, by the name the route table uses. */
export const apiFactories: Record<ApiFunction, (deps: Deps) => ApiHandler> = {
  token: token.create,
  jwks: jwks.create,
  me: me.create,
  ingest: ingest.create,
  sync: sync.create,
  health: health.create,
  manage: manage.create,
  read: read.create,
  dashboard: dashboard.create,
  audit: audit.create,
  dlq: dlq.create,
  openapi: openapi.create,
};

/** Every function, API or not, for `npm run invoke`. */
export const allFactories = {
  ...apiFactories,
  authorizer: authorizer.create,
  consume: consume.create,
  retention: retention.create,
} as const;
