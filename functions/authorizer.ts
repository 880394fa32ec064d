import type { APIGatewayAuthorizerResult, APIGatewayTokenAuthorizerEvent } from "aws-lambda";
import { UnauthorizedError } from "../core/errors.ts";
import { verifyToken } from "./adapters/auth/tokens.ts";
import { findPrincipalById } from "./app/identity.ts";
import { type DepsOf, type Handler, lambdaHandler } from "./deps.ts";

/**
 * `arn:aws:execute-api:region:account:api/stage/METHOD/path` → the same API
 * and stage with every method and path. API Gateway caches the policy per
 * token and applies it to every route, so it must not name one route.
 */
export function apiWildcardArn(methodArn: string): string {
  const [apiArn, stage] = methodArn.split("/");
  return `${apiArn}/${stage}/*/*`;
}

/**
 * REST API TOKEN authorizer: verifies the bearer JWT, checks that its
 * principal still exists and is not revoked, and passes `sub`, `project` and
 * `role` to the handlers. API Gateway caches the answer per token for
 * AUTHORIZER_CACHE_TTL_SECONDS, so a revoked device's tokens stop working
 * within that time. Throwing `Unauthorized` is how a Lambda authorizer makes
 * API Gateway answer 401.
 */
export const create =
  (
    deps: DepsOf<"authorizer">,
  ): Handler<APIGatewayTokenAuthorizerEvent, APIGatewayAuthorizerResult> =>
  async (event) => {
    // RFC 7235: the scheme is case-insensitive; exactly one space, then the token.
    const match = /^Bearer ([A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+)$/i.exec(
      event.authorizationToken ?? "",
    );
    if (!match) throw new Error("Unauthorized");
    try {
      const principal = await verifyToken(
        deps.keys,
        { issuer: deps.config.issuer, audience: deps.config.audience },
        match[1]!,
        deps.now(),
      );
      const current = await findPrincipalById(deps.db, principal.sub);
      if (!current || current.revoked_at || current.project_id !== principal.project) {
        throw new UnauthorizedError("These credentials were revoked.");
      }
      return {
        principalId: principal.sub,
        policyDocument: {
          Version: "2012-10-17",
          Statement: [
            {
              Action: "execute-api:Invoke",
              Effect: "Allow",
              Resource: apiWildcardArn(event.methodArn),
            },
          ],
        },
        context: { sub: principal.sub, project: principal.project ?? "", role: principal.role },
      };
    } catch (error) {
      if (error instanceof UnauthorizedError) throw new Error("Unauthorized");
      throw error;
    }
  };

export const handler = lambdaHandler("authorizer", create);
