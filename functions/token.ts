import middy from "@middy/core";
import type { APIGatewayProxyResult } from "aws-lambda";
import { verifySecret } from "./adapters/auth/secrets.ts";
import { issueToken } from "./adapters/auth/tokens.ts";
import { findPrincipalByClientId } from "./app/identity.ts";
import {
  clearTokenFailures,
  recordTokenFailure,
  tokenRetryAfterSeconds,
} from "./app/token-failures.ts";
import { type DepsOf, lambdaHandler } from "./deps.ts";
import { type ApiEvent, header, httpErrors, json } from "./http/middleware.ts";

const MAX_TOKEN_REQUEST_BYTES = 8 * 1024;
const CLIENT_ID = /^[A-Za-z0-9_-]{1,128}$/;

/** RFC 6749 §5.2 error response (this route alone does not use the API error shape). */
function oauthError(status: 400 | 401, error: string, description: string, basic = false) {
  return json(
    status,
    { error, error_description: description },
    basic ? { "www-authenticate": 'Basic realm="edge-sync"' } : {},
  );
}

interface TokenRequest {
  grantType: string | undefined;
  clientId: string | undefined;
  clientSecret: string | undefined;
  basic: boolean;
}

function readBody(event: ApiEvent): Record<string, unknown> | undefined {
  const raw = event.isBase64Encoded
    ? Buffer.from(event.body ?? "", "base64").toString("utf8")
    : (event.body ?? "");
  if (raw === "") return {};
  const type = header(event, "content-type") ?? "";
  if (/^application\/x-www-form-urlencoded/i.test(type)) {
    const params = new URLSearchParams(raw);
    // A parameter sent twice is ambiguous (RFC 6749 §3.1): refuse it.
    if (new Set(params.keys()).size !== [...params.keys()].length) return undefined;
    return Object.fromEntries(params);
  }
  if (/^application\/json/i.test(type)) {
    try {
      const parsed: unknown = JSON.parse(raw);
      return typeof parsed === "object" && parsed !== null && !Array.isArray(parsed)
        ? (parsed as Record<string, unknown>)
        : undefined;
    } catch {
      return undefined;
    }
  }
  return undefined;
}

const str = (v: unknown) => (typeof v === "string" && v !== "" ? v : undefined);

function readRequest(event: ApiEvent): TokenRequest | undefined {
  const body = readBody(event);
  if (!body) return undefined;
  const authorization = header(event, "authorization");
  if (authorization) {
    const match = /^Basic\s+([A-Za-z0-9+/=]+)$/i.exec(authorization);
    if (!match || body.client_secret !== undefined) return undefined;
    const decoded = Buffer.from(match[1]!, "base64").toString("utf8");
    const colon = decoded.indexOf(":");
    if (colon < 0) return undefined;
    // RFC 6749 §2.3.1: both parts are form-urlencoded before base64.
    const clientId = decodeURIComponent(decoded.slice(0, colon).replace(/\+/g, " "));
    const clientSecret = decodeURIComponent(decoded.slice(colon + 1).replace(/\+/g, " "));
    return { grantType: str(body.grant_type), clientId, clientSecret, basic: true };
  }
  return {
    grantType: str(body.grant_type),
    clientId: str(body.client_id),
    clientSecret: str(body.client_secret),
    basic: false,
  };
}

/**
 * The client credentials of a well-formed client-credentials request, or the
 * RFC 6749 §5.2 error to answer it with.
 */
function credentialsOf(
  event: ApiEvent,
): { clientId: string; clientSecret: string; basic: boolean } | APIGatewayProxyResult {
  if ((event.body?.length ?? 0) > MAX_TOKEN_REQUEST_BYTES) {
    return oauthError(400, "invalid_request", "The request is too large.");
  }
  let request: TokenRequest | undefined;
  try {
    request = readRequest(event);
  } catch {
    request = undefined;
  }
  if (!request?.grantType) {
    return oauthError(400, "invalid_request", "Send grant_type, client_id and client_secret.");
  }
  if (request.grantType !== "client_credentials") {
    return oauthError(400, "unsupported_grant_type", "Only client_credentials is supported.");
  }
  if (!request.clientId || !request.clientSecret) {
    return oauthError(400, "invalid_request", "client_id and client_secret are required.");
  }
  // Every client id this service issues has this form; anything else is unknown.
  if (!CLIENT_ID.test(request.clientId)) {
    return oauthError(401, "invalid_client", "Unknown client or wrong secret.", request.basic);
  }
  return { clientId: request.clientId, clientSecret: request.clientSecret, basic: request.basic };
}

/** `POST /v1/oauth/token`: OAuth 2.0 client credentials grant (RFC 6749 §4.4). */
export const create = (deps: DepsOf<"token">) =>
  middy<ApiEvent, APIGatewayProxyResult>()
    .use(httpErrors(deps.logger))
    .handler(async (event) => {
      const request = credentialsOf(event);
      if ("statusCode" in request) return request;
      const principal = await findPrincipalByClientId(deps.db, request.clientId);
      const wait = principal ? await tokenRetryAfterSeconds(deps.db, request.clientId) : 0;
      if (wait > 0) {
        return json(
          429,
          {
            error: "rate_limited",
            error_description: "Too many failed attempts; try again later.",
          },
          { "retry-after": String(wait) },
        );
      }
      const valid = await verifySecret(request.clientSecret, principal?.secret_hash);
      if (!principal || !valid || principal.revoked_at) {
        // Only existing clients are counted: random ids must not grow the table.
        if (principal) await recordTokenFailure(deps.db, request.clientId);
        // Only the holder of the right secret learns that it was revoked, and what to do.
        const description =
          principal && valid && principal.revoked_at
            ? `This client was revoked on ${principal.revoked_at.toISOString()}; ask an admin for new credentials.`
            : "Unknown client or wrong secret.";
        return oauthError(401, "invalid_client", description, request.basic);
      }
      await clearTokenFailures(deps.db, request.clientId);
      const ttl = deps.config.tokenTtlSeconds;
      const accessToken = await issueToken(
        deps.keys,
        { issuer: deps.config.issuer, audience: deps.config.audience, ttlSeconds: ttl },
        { sub: principal.id, project: principal.project_id, role: principal.role },
        deps.now(),
      );
      return json(200, { access_token: accessToken, token_type: "Bearer", expires_in: ttl });
    });

export const handler = lambdaHandler("token", create);
