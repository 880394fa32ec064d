import { MAX_CHANGES_PER_REQUEST, readableChangeId, readableReportId } from "../core/change.ts";
import { ValidationError } from "../core/errors.ts";
import { MAX_REQUEST_BYTES } from "../core/limits.ts";
import { ChangeBatchSchema } from "../core/wire.ts";
import { deviceWriteRules } from "./app/device-keys.ts";
import { acceptChanges } from "./app/ingest.ts";
import { type DepsOf, lambdaHandler } from "./deps.ts";
import { apiRoute } from "./http/api-route.ts";
import { recordAnswered, recordDeviceErrors } from "./http/device-activity.ts";
import { json, principalOf, projectOf } from "./http/middleware.ts";

/**
 * The batch's changes with their ids. A change without a readable id fails
 * the whole request (its outcome could not be reported); anything else is
 * judged change by change.
 */
function readBatch(body: unknown): { raw: unknown; changeId: string }[] {
  const batch = ChangeBatchSchema.safeParse(body);
  if (!batch.success) {
    throw new ValidationError(
      `The body must be {"changes": [...]} with 1 to ${MAX_CHANGES_PER_REQUEST} changes.`,
    );
  }
  return batch.data.changes.map((raw, index) => {
    const changeId = readableChangeId(raw);
    if (!changeId)
      throw new ValidationError(`changes[${index}] has no readable changeId (a UUID).`, { index });
    return { raw, changeId };
  });
}

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
    const changes = readBatch(event.parsedBody);
    // Ingest keeps taking changes while the database is down: their
    // signatures and scopes are then checked by the consumer, which needs
    // it anyway.
    const reportIds = [
      ...new Set(changes.flatMap(({ raw }) => readableReportId(raw)?.toLowerCase() ?? [])),
    ];
    const rules = await deviceWriteRules(deps.db, {
      projectId,
      deviceId: principal.sub,
      reportIds,
    }).catch((error) => {
      deps.logger.warn("device rules unreadable; the consumer checks signatures and scopes", {
        error,
      });
      return undefined;
    });
    const result = await acceptChanges(deps.queue, {
      projectId,
      deviceId: principal.sub,
      changes,
      nowMs: deps.now(),
      maxClockSkewMs: deps.config.maxClockSkewMs,
      rules,
    });
    const { accepted, rejected, failed } = result;
    await recordAnswered(deps, event, "push", result);
    deps.logger.info("changes received", {
      deviceId: principal.sub,
      accepted: accepted.length,
      rejected: rejected.length,
      failed: failed.length,
    });
    return json(202, result);
  });

export const handler = lambdaHandler("ingest", create);
