import { ValidationError } from "../core/errors.ts";
import type { SyncPage } from "../core/types.ts";
import { SyncQuerySchema } from "../core/wire.ts";
import { pull } from "./app/pull.ts";
import { type DepsOf, lambdaHandler } from "./deps.ts";
import { apiRoute } from "./http/api-route.ts";
import { recordAnswered, recordDeviceErrors } from "./http/device-activity.ts";
import { json, principalOf, projectOf } from "./http/middleware.ts";

/** `GET /v1/sync`: one page of what changed since the device's cursor. */
export const create = (deps: DepsOf<"sync">) =>
  apiRoute(deps, { use: [recordDeviceErrors(deps, "pull")] }).handler(async (event) => {
    const principal = principalOf(event);
    const query = SyncQuerySchema.safeParse(event.queryStringParameters ?? {});
    if (!query.success) throw new ValidationError("limit must be 1 to 1000; cursor as returned.");
    const page = await pull(deps.db, {
      projectId: projectOf(principal),
      deviceId: principal.sub,
      cursor: query.data.cursor,
      limit: query.data.limit,
    });
    await recordAnswered(deps, event, "pull");
    const body: SyncPage = { ...page, serverTime: deps.now() };
    return json(200, body);
  });

export const handler = lambdaHandler("sync", create);
