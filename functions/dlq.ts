import { NotFoundError, ValidationError } from "../core/errors.ts";
import { NoQuerySchema } from "../core/wire.ts";
import { RedriveRequestSchema } from "../core/wire-fleet.ts";
import { withActivity } from "./app/activity.ts";
import { type DepsOf, lambdaHandler } from "./deps.ts";
import { apiRoute, callerActing, callerProject } from "./http/api-route.ts";
import { json } from "./http/middleware.ts";

/**
 * Fleet operations for a project's admin: the changes the consumer gave up
 * on, and putting them back on the queue (CONTRACT.md "Fleet operations").
 */
export const create = (deps: DepsOf<"dlq">) =>
  apiRoute(deps, { body: { maxBytes: 16 * 1024, maxDepth: 4 } }).handler(async (event) => {
    const projectId = callerProject(event);
    switch (`${event.httpMethod} ${event.resource}`) {
      case "GET /v1/dlq": {
        if (!NoQuerySchema.safeParse(event.queryStringParameters ?? {}).success)
          throw new ValidationError("This route takes no query parameters.");
        return json(200, { items: await deps.deadLetters.list(projectId) });
      }
      case "POST /v1/dlq/redrive": {
        const body = RedriveRequestSchema.safeParse(event.parsedBody ?? {});
        if (!body.success)
          throw new ValidationError('The body must be {} or {"messageIds": ["…", …]}.');
        const moved = (await deps.deadLetters.redrive(projectId, body.data.messageIds)).map(
          ({ messageId, changeId, reportId }) => ({ messageId, changeId, reportId }),
        );
        deps.logger.info("dead letters redriven", { projectId, moved });
        // Recorded once they moved (the queue has no transaction to share):
        // who put which changes back. Should the record fail, the answer is
        // a 500 and the line above names them.
        await withActivity(
          deps.db,
          callerActing(deps, event),
          async () => {},
          () => ({
            action: "dlq.redrive",
            targetId: projectId,
            details: { moved: moved.length, changes: moved },
          }),
        );
        return json(200, { moved: moved.length });
      }
      default:
        throw new NotFoundError("No such route.");
    }
  });

export const handler = lambdaHandler("dlq", create);
