import type { Logger } from "@aws-lambda-powertools/logger";
import type { MiddlewareObj } from "@middy/core";
import type { APIGatewayProxyEvent, APIGatewayProxyResult } from "aws-lambda";
import {
  EdgeSyncError,
  ForbiddenError,
  NotFoundError,
  UnauthorizedError,
  ValidationError,
} from "../../core/errors.ts";
import { nestsDeeperThan } from "../../core/json.ts";
import type { Principal, Role } from "../../core/types.ts";
import type { Exports } from "../adapters/exports.ts";
import { routeOf, SECURITY_HEADERS } from "../routes.ts";

export { SECURITY_HEADERS };

/** A REST proxy event after the body middleware has parsed its JSON. */
export type ApiEvent = APIGatewayProxyEvent & { parsedBody?: unknown };
type Middleware = MiddlewareObj<ApiEvent, APIGatewayProxyResult>;

export function json(
  statusCode: number,
  body: unknown,
  headers: Record<string, string> = {},
): APIGatewayProxyResult {
  return jsonText(statusCode, JSON.stringify(body), headers);
}

/** A JSON answer already serialized. */
function jsonText(
  statusCode: number,
  text: string,
  headers: Record<string, string> = {},
): APIGatewayProxyResult {
  return {
    statusCode,
    headers: { ...SECURITY_HEADERS, "content-type": "application/json; charset=utf-8", ...headers },
    body: text,
  };
}

/**
 * The most a JSON answer may hold inline, as Lambda counts it: the proxy
 * result's JSON, where the body is a string with its quotes escaped.
 * Lambda refuses a response over 6 MB (API Gateway answers 502); this
 * leaves room for the headers.
 */
export const MAX_INLINE_BYTES = 6 * 1024 * 1024 - 64 * 1024;

/**
 * A JSON answer that may be too large to return: inline (200) when it fits,
 * else parked with `exports` and answered `303 See Other` to a download
 * link that needs no credentials (`{"url","expiresAt","bytes"}`, the link
 * also in `Location`). HTTP clients follow it and get the same document.
 */
export async function jsonOrLink(
  exports: Exports,
  kind: string,
  body: unknown,
  now: () => number,
): Promise<APIGatewayProxyResult> {
  const text = JSON.stringify(body);
  const fits =
    Buffer.byteLength(text) <= MAX_INLINE_BYTES &&
    Buffer.byteLength(JSON.stringify(text)) <= MAX_INLINE_BYTES;
  if (fits) return jsonText(200, text);
  const link = await exports.park(kind, text, now);
  return json(303, link, { location: link.url });
}

export function noContent(): APIGatewayProxyResult {
  return { statusCode: 204, headers: { ...SECURITY_HEADERS }, body: "" };
}

export function errorResponse(
  statusCode: number,
  code: string,
  message: string,
  details?: unknown,
) {
  return json(statusCode, {
    error: { code, message, ...(details === undefined ? {} : { details }) },
  });
}

/** Case-insensitive header lookup (API Gateway keeps the client's casing). */
export function header(event: APIGatewayProxyEvent, name: string): string | undefined {
  const wanted = name.toLowerCase();
  for (const [key, value] of Object.entries(event.headers ?? {})) {
    if (key.toLowerCase() === wanted && value !== undefined) return value;
  }
  return undefined;
}

/**
 * Turns every error into the API's error shape. Errors below 500 are shown as
 * they are; anything else is logged and becomes a generic `internal` (or
 * `unavailable`), never echoing stack traces or SQL.
 */
export function httpErrors(logger: Logger): Middleware {
  return {
    onError: async (request) => {
      const error = request.error;
      if (error instanceof EdgeSyncError && error.statusCode < 500) {
        request.response = errorResponse(
          error.statusCode,
          error.code,
          error.message,
          error.details,
        );
        return;
      }
      if (error instanceof EdgeSyncError && error.statusCode === 503) {
        logger.warn("dependency unavailable", { error });
        request.response = errorResponse(503, "unavailable", error.message);
        return;
      }
      logger.error("unhandled error", { error });
      request.response = errorResponse(500, "internal", "Something went wrong on our side.");
    },
  };
}

export interface BodyLimits {
  maxBytes: number;
  /**
   * Deeper bodies are refused whole, before any recursive walk (validation,
   * hashing) could exhaust the stack on them. Unset where the handler
   * measures depth itself, per item, with an iterative walk (ingest: a too
   * deep change is rejected alone, never the whole push).
   */
  maxDepth?: number;
}

/**
 * Requires a JSON body of bounded size on POST and parses it into
 * `event.parsedBody`; GET and DELETE pass through.
 */
export function jsonBody({ maxBytes, maxDepth }: BodyLimits): Middleware {
  return {
    before: async ({ event }) => {
      if (!["POST", "PUT", "PATCH"].includes(event.httpMethod)) return;
      const type = header(event, "content-type") ?? "";
      if (!/^application\/json\s*(;|$)/i.test(type)) {
        throw new EdgeSyncError(
          "unsupported_media_type",
          "Send the body as application/json.",
          415,
        );
      }
      const raw = event.isBase64Encoded
        ? Buffer.from(event.body ?? "", "base64")
        : Buffer.from(event.body ?? "", "utf8");
      if (raw.byteLength > maxBytes) {
        throw new EdgeSyncError(
          "payload_too_large",
          `The body may be at most ${maxBytes} bytes.`,
          413,
        );
      }
      try {
        event.parsedBody = JSON.parse(raw.toString("utf8"));
      } catch {
        throw new EdgeSyncError("invalid_json", "The body is not valid JSON.", 400);
      }
      if (maxDepth !== undefined && nestsDeeperThan(event.parsedBody, maxDepth)) {
        throw new ValidationError(`The body nests more than ${maxDepth} levels deep.`);
      }
    },
  };
}

/**
 * Enforces the route table's roles. The authorizer has already verified the
 * token; its context carries `sub`, `project` and `role`.
 */
export function authorize(): Middleware {
  return {
    before: async ({ event }) => {
      const route = routeOf(event.resource, event.httpMethod);
      if (!route) throw new NotFoundError("No such route.");
      if (route.roles === "public") return;
      const principal = principalOf(event);
      if (!route.roles.includes(principal.role)) throw new ForbiddenError();
    },
  };
}

/** The caller, from the authorizer's context (never from the body). */
export function principalOf(event: APIGatewayProxyEvent): Principal {
  const context = event.requestContext.authorizer as Record<string, unknown> | null | undefined;
  const sub = context?.sub;
  const role = context?.role;
  if (typeof sub !== "string" || typeof role !== "string") throw new UnauthorizedError();
  const project =
    typeof context?.project === "string" && context.project !== "" ? context.project : null;
  return { sub, project, role: role as Role };
}

/** The caller as the activity log names them (functions/app/activity.ts). */
export function actorOf(event: APIGatewayProxyEvent): { type: "member" | "operator"; id: string } {
  const { sub, role } = principalOf(event);
  return { type: role === "operator" ? "operator" : "member", id: sub };
}

/** The caller's project; every query of project data is scoped by it. */
export function projectOf(principal: Principal): string {
  if (!principal.project) throw new ForbiddenError("This token belongs to no project.");
  return principal.project;
}
