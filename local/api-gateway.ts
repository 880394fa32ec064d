import { randomUUID } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type {
  APIGatewayAuthorizerResult,
  APIGatewayProxyEvent,
  APIGatewayProxyResult,
  APIGatewayTokenAuthorizerEvent,
} from "aws-lambda";
import type { Handler } from "../functions/deps.ts";
import {
  type ApiFunction,
  AUTHORIZER_CACHE_TTL_SECONDS,
  type GatewayResponse,
  gatewayResponses,
  matchRoute,
  SECURITY_HEADERS,
} from "../functions/routes.ts";
import type { ApiHandler } from "./functions.ts";
import { lambdaContext } from "./lambda-context.ts";

/** API Gateway's own payload limit for REST APIs. */
const MAX_PAYLOAD_BYTES = 10 * 1024 * 1024;
/**
 * Lambda's limit on a synchronous invocation's response, the JSON of the
 * whole proxy result: a function that returns more fails, and API Gateway
 * answers 502.
 */
const MAX_LAMBDA_RESPONSE_BYTES = 6 * 1024 * 1024;
const STAGE = "local";
const API_ID = "local";
const ACCOUNT = "000000000000";
const REGION = "us-east-1";

export interface ApiGatewayOptions {
  host: string;
  port: number;
  handlers: Record<ApiFunction, ApiHandler>;
  authorizer: Handler<APIGatewayTokenAuthorizerEvent, APIGatewayAuthorizerResult>;
  /** Called with each request's outcome, for logs. */
  onRequest?: (line: { method: string; path: string; status: number; ms: number }) => void;
  /**
   * Wraps every routed request: runs before the handler and may hold it, or
   * hold its response after `next()`. Tests use it to stop a client at an
   * exact point of a round (the push before or after the cloud took it).
   */
  around?: RequestInterceptor;
  /** The cloud's clock, which the authorizer cache's TTL runs on (default: the wall clock). */
  now?: () => number;
}

export type RequestInterceptor = (
  request: { method: string; resource: string; body: string | null },
  next: () => Promise<APIGatewayProxyResult>,
) => Promise<APIGatewayProxyResult>;

export interface ApiGateway {
  url: string;
  server: Server;
  close(): Promise<void>;
}

class GatewayError extends Error {
  constructor(readonly response: GatewayResponse) {
    super(response);
  }
}

function gatewayResponse(kind: GatewayResponse, requestId: string): APIGatewayProxyResult {
  const { status, code, message } = gatewayResponses[kind];
  return {
    statusCode: status,
    headers: {
      ...SECURITY_HEADERS,
      "content-type": "application/json",
      "x-amzn-requestid": requestId,
      "x-amzn-errortype": kind,
    },
    body: JSON.stringify({ error: { code, message } }),
  };
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_PAYLOAD_BYTES) throw new GatewayError("REQUEST_TOO_LARGE");
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

/** Header maps as API Gateway builds them: the last value single, all values multi. */
function headerMaps(req: IncomingMessage) {
  const single: Record<string, string> = {};
  const multi: Record<string, string[]> = {};
  for (let i = 0; i < req.rawHeaders.length; i += 2) {
    const name = req.rawHeaders[i]!;
    const value = req.rawHeaders[i + 1]!;
    single[name] = value;
    multi[name] = [...(multi[name] ?? []), value];
  }
  return { single, multi };
}

function queryMaps(url: URL) {
  if ([...url.searchParams.keys()].length === 0) return { single: null, multi: null };
  const single: Record<string, string> = {};
  const multi: Record<string, string[]> = {};
  for (const [key, value] of url.searchParams) {
    single[key] = value;
    multi[key] = [...(multi[key] ?? []), value];
  }
  return { single, multi };
}

const isText = (type: string | undefined) =>
  !type || /^(text\/|application\/(json|x-www-form-urlencoded|xml))/i.test(type);

function policyAllows(result: APIGatewayAuthorizerResult, methodArn: string): boolean {
  const statements = result.policyDocument?.Statement ?? [];
  const matches = (resource: string | string[]) =>
    [resource]
      .flat()
      .some((r) =>
        new RegExp(`^${r.replace(/[.+?^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*")}$`).test(
          methodArn,
        ),
      );
  const relevant = statements.filter(
    (s) => "Resource" in s && matches(s.Resource as string | string[]),
  );
  return relevant.length > 0 && relevant.every((s) => s.Effect === "Allow");
}

/**
 * A local stand-in for an API Gateway REST API with a TOKEN Lambda
 * authorizer. It builds the same proxy events (payload format 1.0), runs the
 * authorizer first and caches its answer per token, and returns the
 * handler's response as it is. Routes come from `functions/routes.ts`.
 */
export async function startApiGateway(options: ApiGatewayOptions): Promise<ApiGateway> {
  const authCache = new Map<string, { result: APIGatewayAuthorizerResult; expiresAt: number }>();
  const now = options.now ?? Date.now;

  async function authorize(token: string | undefined, methodArn: string, requestId: string) {
    if (!token) throw new GatewayError("UNAUTHORIZED");
    const cached = authCache.get(token);
    let result = cached && cached.expiresAt > now() ? cached.result : undefined;
    if (!result) {
      try {
        result = await options.authorizer(
          { type: "TOKEN", authorizationToken: token, methodArn },
          lambdaContext("authorizer", requestId),
        );
      } catch (error) {
        if ((error as Error).message === "Unauthorized") throw new GatewayError("UNAUTHORIZED");
        throw new GatewayError("DEFAULT_5XX");
      }
      authCache.set(token, { result, expiresAt: now() + AUTHORIZER_CACHE_TTL_SECONDS * 1000 });
    }
    if (!policyAllows(result, methodArn)) throw new GatewayError("ACCESS_DENIED");
    return result;
  }

  async function handle(req: IncomingMessage, requestId: string): Promise<APIGatewayProxyResult> {
    const url = new URL(req.url ?? "/", "http://localhost");
    const method = req.method ?? "GET";
    const match = matchRoute(method, url.pathname);
    const body = await readBody(req);
    if (!match) throw new GatewayError("MISSING_AUTHENTICATION_TOKEN");
    const { route, pathParameters } = match;
    const methodArn = `arn:aws:execute-api:${REGION}:${ACCOUNT}:${API_ID}/${STAGE}/${method}${url.pathname}`;
    const headers = headerMaps(req);
    const token = Object.entries(headers.single).find(
      ([k]) => k.toLowerCase() === "authorization",
    )?.[1];
    const auth =
      route.roles === "public" ? undefined : await authorize(token, methodArn, requestId);
    const query = queryMaps(url);
    const now = new Date();
    const text = isText(req.headers["content-type"]);
    const event: APIGatewayProxyEvent = {
      resource: route.path,
      path: url.pathname,
      httpMethod: method,
      headers: headers.single,
      multiValueHeaders: headers.multi,
      queryStringParameters: query.single,
      multiValueQueryStringParameters: query.multi,
      pathParameters,
      stageVariables: null,
      body: body.length === 0 ? null : text ? body.toString("utf8") : body.toString("base64"),
      isBase64Encoded: body.length > 0 && !text,
      requestContext: {
        accountId: ACCOUNT,
        apiId: API_ID,
        authorizer: auth
          ? { principalId: auth.principalId, ...auth.context, integrationLatency: 0 }
          : null,
        domainName: req.headers.host ?? "localhost",
        domainPrefix: "localhost",
        httpMethod: method,
        identity: {
          accessKey: null,
          accountId: null,
          apiKey: null,
          apiKeyId: null,
          caller: null,
          clientCert: null,
          cognitoAuthenticationProvider: null,
          cognitoAuthenticationType: null,
          cognitoIdentityId: null,
          cognitoIdentityPoolId: null,
          principalOrgId: null,
          sourceIp: req.socket.remoteAddress ?? "127.0.0.1",
          user: null,
          userAgent: req.headers["user-agent"] ?? null,
          userArn: null,
        },
        path: `/${STAGE}${url.pathname}`,
        protocol: `HTTP/${req.httpVersion}`,
        requestId,
        requestTime: now.toUTCString(),
        requestTimeEpoch: now.getTime(),
        resourceId: route.fn,
        resourcePath: route.path,
        stage: STAGE,
      },
    };
    const invoke = async () => {
      try {
        const result = await options.handlers[route.fn](event, lambdaContext(route.fn, requestId));
        if (Buffer.byteLength(JSON.stringify(result)) > MAX_LAMBDA_RESPONSE_BYTES) {
          throw new Error("Response payload size exceeded maximum allowed payload size");
        }
        return result;
      } catch {
        // A handler that throws is a Lambda error: API Gateway answers 502.
        return { ...gatewayResponse("DEFAULT_5XX", requestId), statusCode: 502 };
      }
    };
    return options.around
      ? options.around({ method, resource: route.path, body: event.body }, invoke)
      : invoke();
  }

  function send(res: ServerResponse, result: APIGatewayProxyResult, requestId: string) {
    const headers: Record<string, string | string[]> = { "x-amzn-requestid": requestId };
    for (const [k, v] of Object.entries(result.headers ?? {})) headers[k.toLowerCase()] = String(v);
    for (const [k, v] of Object.entries(result.multiValueHeaders ?? {}))
      headers[k.toLowerCase()] = v.map(String);
    const body = result.isBase64Encoded
      ? Buffer.from(result.body, "base64")
      : Buffer.from(result.body ?? "");
    res.writeHead(result.statusCode, headers);
    res.end(body);
  }

  const server = createServer((req, res) => {
    const started = performance.now();
    const requestId = randomUUID();
    handle(req, requestId)
      .catch((error) =>
        gatewayResponse(error instanceof GatewayError ? error.response : "DEFAULT_5XX", requestId),
      )
      .then((result) => {
        send(res, result, requestId);
        options.onRequest?.({
          method: req.method ?? "",
          path: req.url ?? "",
          status: result.statusCode,
          ms: Math.round(performance.now() - started),
        });
      });
  });
  // A client closes an idle connection before the server does (fetch at
  // this hint less a margin), so it never sends on one the server is
  // closing. With 5 s, a loaded machine reset a request: the client reused
  // a connection in the same turn as the server's idle timer fired.
  server.keepAliveTimeout = 65_000;
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port, options.host, resolve);
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://${options.host}:${port}`,
    server,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
