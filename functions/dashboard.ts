import { css, html, js } from "./dashboard/page.ts";
import { type DepsOf, lambdaHandler } from "./deps.ts";
import { apiRoute } from "./http/api-route.ts";
import { SECURITY_HEADERS } from "./http/middleware.ts";

/**
 * Only this origin's own files run and are fetched: no inline script or
 * style, no framing, no third parties.
 */
const CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "connect-src 'self'",
  "img-src 'self'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join("; ");

const files: Record<string, { type: string; body: string }> = {
  "/": { type: "text/html; charset=utf-8", body: html },
  "/dashboard.js": { type: "text/javascript; charset=utf-8", body: js },
  "/dashboard.css": { type: "text/css; charset=utf-8", body: css },
};

/** `GET /`: the dashboard page, its script and stylesheet. Public: it signs in itself. */
export const create = (deps: DepsOf<"dashboard">) =>
  apiRoute(deps, { public: true }).handler(async (event) => {
    // The page links its files and the API relative to itself, so it works
    // under a stage path (`/prod/`) as at a domain's root; `/prod` without
    // the slash would resolve them against `/`, so it is sent to `/prod/`.
    const asked = event.requestContext.path;
    if (event.resource === "/" && /^\/[\w.-]+$/.test(asked)) {
      return {
        statusCode: 301,
        headers: { ...SECURITY_HEADERS, location: `${asked}/` },
        body: "",
      };
    }
    const file = files[event.resource]!;
    return {
      statusCode: 200,
      headers: {
        ...SECURITY_HEADERS,
        "content-type": file.type,
        "content-security-policy": CSP,
        "cache-control": "no-cache",
      },
      body: file.body,
    };
  });

export const handler = lambdaHandler("dashboard", create);
