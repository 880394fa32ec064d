import * as z from "zod";
import {
  createDocument,
  type oas31,
  type ZodOpenApiOperationObject,
  type ZodOpenApiPathsObject,
  type ZodOpenApiResponsesObject,
} from "zod-openapi";
import * as s from "../../core/wire.ts";
import { type Route, routes } from "../routes.ts";
import { jsonContent, operations } from "./openapi-operations.ts";

type Status = 400 | 401 | 403 | 404 | 413 | 415 | 429 | 500 | 503;

const ERRORS: Record<Status, string> = {
  400: "`invalid_json` or `validation_failed`.",
  401: "`unauthorized`: no valid bearer token.",
  403: "`forbidden`: this role may not do this.",
  404: "`not_found`, also for another project's resources.",
  413: "`payload_too_large`.",
  415: "`unsupported_media_type`: send `application/json`.",
  429: "`rate_limited`: throttled; retry later.",
  500: "`internal`: nothing internal is echoed.",
  503: "`unavailable`: the database or the queue does not answer; retry.",
};

function errors(statuses: readonly Status[]): ZodOpenApiResponsesObject {
  return Object.fromEntries(
    statuses.map((status) => [
      String(status),
      { description: ERRORS[status], content: jsonContent(s.ApiErrorSchema) },
    ]),
  );
}

const TAGS: oas31.TagObject[] = [
  { name: "Identity", description: "Tokens, keys and the caller." },
  { name: "Sync", description: "What edge agents push and pull (role `device`)." },
  { name: "Read", description: "Reports, conflicts, devices and audit (analyst, auditor, admin)." },
  { name: "Manage", description: "Devices and members (admin), projects (operator)." },
  { name: "Fleet", description: "The dead-letter queue and its redrive (admin)." },
  { name: "Service", description: "Health and this document." },
  { name: "Dashboard", description: "The single-page dashboard, served as files." },
];

function operationFor(route: Route): ZodOpenApiOperationObject {
  const key = `${route.method} ${route.path}`;
  const op = operations[key];
  if (!op) throw new Error(`the OpenAPI document has no operation for ${key}`);
  const authenticated = route.roles !== "public";
  const pathParams = [...route.path.matchAll(/\{(\w+)\}/g)].map((m) => m[1]!);
  // Stage throttling and the gateway's own 5XX apply to every route.
  const statuses = new Set<Status>([429, 500]);
  if (authenticated) for (const s of [401, 403, 503] as const) statuses.add(s);
  if (op.query) statuses.add(400);
  if (pathParams.length) statuses.add(404);
  if (op.body && route.fn !== "token") for (const s of [400, 413, 415] as const) statuses.add(s);
  const ok = op.ok.schema
    ? { content: { [op.ok.type ?? "application/json"]: { schema: op.ok.schema } } }
    : {};
  const roles = authenticated ? `Roles: ${(route.roles as readonly string[]).join(", ")}.` : "";
  const description = [op.description, roles].filter(Boolean).join(" ");
  return {
    operationId: op.operationId,
    summary: op.summary,
    ...(description ? { description } : {}),
    tags: [op.tag],
    security: authenticated
      ? [{ bearer: [] }]
      : route.fn === "token"
        ? [{}, { clientBasic: [] }]
        : [],
    ...(op.query || pathParams.length
      ? {
          requestParams: {
            ...(op.query ? { query: op.query } : {}),
            ...(pathParams.length
              ? { path: z.object(Object.fromEntries(pathParams.map((p) => [p, z.uuid()]))) }
              : {}),
          },
        }
      : {}),
    ...(op.body
      ? {
          requestBody: {
            required: true,
            content:
              route.fn === "token"
                ? {
                    "application/x-www-form-urlencoded": { schema: op.body },
                    "application/json": { schema: op.body },
                  }
                : jsonContent(op.body),
          },
        }
      : {}),
    responses: {
      [String(op.ok.status)]: { description: op.ok.description, ...ok },
      ...errors([...statuses].sort()),
      ...op.responses,
    },
  };
}

/** The API's OpenAPI 3.1 document, built from the route table and the zod schemas. */
export function buildOpenApiDocument(version: string): oas31.OpenAPIObject {
  const paths: ZodOpenApiPathsObject = {};
  for (const route of routes) {
    paths[route.path] ??= {};
    paths[route.path]![route.method.toLowerCase() as "get" | "post" | "delete"] =
      operationFor(route);
  }
  const unused = Object.keys(operations).filter(
    (key) => !routes.some((r) => `${r.method} ${r.path}` === key),
  );
  if (unused.length) throw new Error(`operations without a route: ${unused.join(", ")}`);
  return createDocument({
    openapi: "3.1.0",
    info: {
      title: "edge-sync",
      version,
      description:
        "Offline-first sync of field reports: edge agents push changes and pull the merged state; analysts, auditors and admins read reports, conflicts, devices and the audit log.",
    },
    // Relative to where this document is served (`<base>/v1/openapi.json`).
    servers: [{ url: "..", description: "The API this document was served by." }],
    tags: TAGS,
    paths,
    components: {
      securitySchemes: {
        bearer: { type: "http", scheme: "bearer", bearerFormat: "JWT" },
        clientBasic: { type: "http", scheme: "basic", description: "client_id:client_secret" },
      },
    },
  });
}
