import type { Role } from "../core/types.ts";

/** The Lambda functions behind the API, one file each in `functions/`. */
export type ApiFunction =
  | "token"
  | "jwks"
  | "me"
  | "ingest"
  | "sync"
  | "health"
  | "manage"
  | "read"
  | "dashboard"
  | "audit"
  | "dlq"
  | "openapi";

export interface Route {
  method: "GET" | "POST" | "PUT" | "PATCH" | "DELETE";
  /** API Gateway resource path; `{name}` is a path parameter. */
  path: string;
  fn: ApiFunction;
  /** Roles allowed, or "public" for routes without the authorizer. */
  roles: readonly Role[] | "public";
}

const READERS: readonly Role[] = ["analyst", "auditor", "admin"];
const EVERYONE: readonly Role[] = ["device", ...READERS, "operator"];

/**
 * The one route table. The local API emulator and the CDK stack both build
 * from it, so the two cannot drift.
 */
export const routes: readonly Route[] = [
  { method: "POST", path: "/v1/oauth/token", fn: "token", roles: "public" },
  { method: "GET", path: "/.well-known/jwks.json", fn: "jwks", roles: "public" },
  { method: "GET", path: "/v1/health", fn: "health", roles: "public" },
  { method: "GET", path: "/v1/openapi.json", fn: "openapi", roles: "public" },
  { method: "GET", path: "/", fn: "dashboard", roles: "public" },
  { method: "GET", path: "/dashboard.js", fn: "dashboard", roles: "public" },
  { method: "GET", path: "/dashboard.css", fn: "dashboard", roles: "public" },
  { method: "GET", path: "/v1/me", fn: "me", roles: EVERYONE },
  { method: "POST", path: "/v1/devices/me/key", fn: "me", roles: ["device"] },
  { method: "POST", path: "/v1/changes", fn: "ingest", roles: ["device"] },
  { method: "GET", path: "/v1/sync", fn: "sync", roles: ["device"] },
  { method: "POST", path: "/v1/devices", fn: "manage", roles: ["admin"] },
  { method: "DELETE", path: "/v1/devices/{id}", fn: "manage", roles: ["admin"] },
  { method: "PUT", path: "/v1/devices/{id}/scopes", fn: "manage", roles: ["admin"] },
  { method: "POST", path: "/v1/members", fn: "manage", roles: ["admin"] },
  { method: "DELETE", path: "/v1/members/{id}", fn: "manage", roles: ["admin"] },
  { method: "POST", path: "/v1/projects", fn: "manage", roles: ["operator"] },
  { method: "GET", path: "/v1/reports", fn: "read", roles: READERS },
  { method: "GET", path: "/v1/reports/{id}", fn: "read", roles: READERS },
  { method: "GET", path: "/v1/reports/{id}/history", fn: "read", roles: READERS },
  { method: "GET", path: "/v1/conflicts", fn: "read", roles: READERS },
  { method: "GET", path: "/v1/devices", fn: "read", roles: READERS },
  { method: "GET", path: "/v1/devices/{id}/scopes", fn: "read", roles: ["auditor", "admin"] },
  { method: "GET", path: "/v1/members", fn: "read", roles: READERS },
  { method: "GET", path: "/v1/status", fn: "read", roles: READERS },
  { method: "GET", path: "/v1/audit", fn: "read", roles: ["auditor", "admin"] },
  { method: "GET", path: "/v1/audit/verify", fn: "audit", roles: ["auditor", "admin"] },
  { method: "GET", path: "/v1/activity", fn: "audit", roles: ["auditor", "admin"] },
  { method: "GET", path: "/v1/reports/{id}/evidence", fn: "audit", roles: ["auditor", "admin"] },
  { method: "POST", path: "/v1/erasures", fn: "audit", roles: ["admin"] },
  { method: "PUT", path: "/v1/reports/{id}/hold", fn: "audit", roles: ["admin", "auditor"] },
  { method: "DELETE", path: "/v1/reports/{id}/hold", fn: "audit", roles: ["admin", "auditor"] },
  { method: "PATCH", path: "/v1/project", fn: "audit", roles: ["admin"] },
  { method: "GET", path: "/v1/erasures/{id}", fn: "audit", roles: ["auditor", "admin"] },
  { method: "GET", path: "/v1/dlq", fn: "dlq", roles: ["admin"] },
  { method: "POST", path: "/v1/dlq/redrive", fn: "dlq", roles: ["admin"] },
];

/** Every function the API needs, once each. */
export const apiFunctions: readonly ApiFunction[] = [...new Set(routes.map((r) => r.fn))];

/**
 * Sent with every API response, the handlers' and the gateway's own. There
 * are no CORS headers: the dashboard is served from the API's own origin, so
 * no other origin's script may read a response.
 */
export const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  "cache-control": "no-store",
  "strict-transport-security": "max-age=63072000; includeSubDomains",
  "x-content-type-options": "nosniff",
  "x-frame-options": "DENY",
  "referrer-policy": "no-referrer",
};

/**
 * Bodies API Gateway itself returns (gateway responses), in the API's error
 * shape. The emulator sends the same ones.
 */
export const gatewayResponses = {
  UNAUTHORIZED: { status: 401, code: "unauthorized", message: "A valid bearer token is required." },
  ACCESS_DENIED: { status: 403, code: "forbidden", message: "This token may not do this." },
  MISSING_AUTHENTICATION_TOKEN: { status: 404, code: "not_found", message: "No such route." },
  REQUEST_TOO_LARGE: {
    status: 413,
    code: "payload_too_large",
    message: "The request body is too large.",
  },
  THROTTLED: { status: 429, code: "rate_limited", message: "Too many requests; retry later." },
  DEFAULT_5XX: { status: 500, code: "internal", message: "Something went wrong on our side." },
} as const;

export type GatewayResponse = keyof typeof gatewayResponses;

export interface RouteMatch {
  route: Route;
  pathParameters: Record<string, string> | null;
}

function pattern(path: string): RegExp {
  const source = path
    .split("/")
    .map((part) =>
      /^\{\w+\}$/.test(part) ? `(?<${part.slice(1, -1)}>[^/]+)` : part.replace(/[.]/g, "\\."),
    )
    .join("/");
  return new RegExp(`^${source}$`);
}

const compiled = routes.map((route) => ({ route, regex: pattern(route.path) }));

/** Percent-decodes a path segment; a malformed one is passed on as it came. */
function safeDecode(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}

/** Finds the route for a request, as API Gateway's resource matching does. */
export function matchRoute(method: string, path: string): RouteMatch | undefined {
  for (const { route, regex } of compiled) {
    if (route.method !== method) continue;
    const match = regex.exec(path);
    if (!match) continue;
    const groups = match.groups
      ? Object.fromEntries(Object.entries(match.groups).map(([k, v]) => [k, safeDecode(v)]))
      : null;
    return { route, pathParameters: groups };
  }
  return undefined;
}

/** The route an event came through, by its resource template and method. */
export function routeOf(resource: string, method: string): Route | undefined {
  return routes.find((r) => r.path === resource && r.method === method);
}

/**
 * How long API Gateway reuses an authorizer's answer for the same token.
 * Short, so a revoked device's tokens stop working within a minute.
 */
export const AUTHORIZER_CACHE_TTL_SECONDS = 30;
