import {
  type ChangeMessage,
  checkChange,
  MAX_CHANGES_PER_REQUEST,
  type Rejection,
  readableChangeId,
} from "../core/change.ts";
import { ValidationError } from "../core/errors.ts";
import { MAX_REQUEST_BYTES } from "../core/limits.ts";
import { ChangeBatchSchema, type IngestResult } from "../core/wire.ts";
import { recordDeviceRequest } from "./app/fleet.ts";
import { type DepsOf, lambdaHandler } from "./deps.ts";
import { apiRoute } from "./http/api-route.ts";
import { recordDeviceErrors } from "./http/device-activity.ts";
import { header, json, principalOf, projectOf } from "./http/middleware.ts";

/**
 * `POST /v1/changes`: validates each change and puts the valid ones on the
 * FIFO queue. 202 means SQS holds them; the outcome arrives later on pull.
 */
export const create = (deps: DepsOf<"ingest">) =>
  apiRoute(deps, {
    body: { maxBytes: MAX_REQUEST_BYTES },
    use: [recordDeviceErrors(deps, "push")],
  }).handler(async (event) => {
    const principal = principalOf(event);
    const projectId = projectOf(principal);
    const batch = ChangeBatchSchema.safeParse(event.parsedBody);
    if (!batch.success) {
      throw new ValidationError(
        `The body must be {"changes": [...]} with 1 to ${MAX_CHANGES_PER_REQUEST} changes.`,
      );
    }
    const ids = batch.data.changes.map(readableChangeId);
    const unreadable = ids.indexOf(undefined);
    if (unreadable >= 0) {
      throw new ValidationError(`changes[${unreadable}] has no readable changeId (a UUID).`, {
        index: unreadable,
      });
    }

    const nowMs = deps.now();
    const receivedAt = new Date(nowMs).toISOString();
    const context = {
      deviceId: principal.sub,
      serverNowMs: nowMs,
      maxClockSkewMs: deps.config.maxClockSkewMs,
    };
    const seen = new Set<string>();
    const rejected: Rejection[] = [];
    const messages: ChangeMessage[] = [];
    batch.data.changes.forEach((raw, index) => {
      const changeId = ids[index]!;
      if (seen.has(changeId)) {
        rejected.push({
          changeId,
          code: "duplicate_in_batch",
          message: "this changeId appears earlier in the batch",
        });
        return;
      }
      seen.add(changeId);
      const checked = checkChange(raw, changeId, context);
      if ("rejection" in checked) rejected.push(checked.rejection);
      else
        messages.push({ projectId, deviceId: principal.sub, receivedAt, change: checked.change });
    });

    const queued = messages.length
      ? await deps.queue.enqueue(messages)
      : { accepted: [], rejected: [], failed: [] };
    const { accepted, failed } = queued;
    rejected.push(...queued.rejected);
    // After the queue has them: the bookkeeping must never cost a change.
    await recordDeviceRequest(deps.db, principal.sub, {
      kind: "push",
      answered: true,
      accepted: accepted.length,
      userAgent: header(event, "user-agent"),
      ...(failed[0]
        ? { error: { code: failed[0].code, message: failed[0].message, refused: false } }
        : {}),
    }).catch((error) => deps.logger.warn("device activity not recorded", { error }));
    deps.logger.info("changes received", {
      deviceId: principal.sub,
      accepted: accepted.length,
      rejected: rejected.length,
      failed: failed.length,
    });
    const result: IngestResult = { accepted, rejected, failed };
    return json(202, result);
  });

export const handler = lambdaHandler("ingest", create);
