import { processPartialResponse, SqsFifoPartialProcessorAsync } from "@aws-lambda-powertools/batch";
import type { SQSBatchResponse, SQSEvent, SQSRecord } from "aws-lambda";
import * as z from "zod";
import { ChangeSchema, scopeRejection, signatureRejection } from "../core/change.ts";
import type { Queryable } from "./adapters/db/db.ts";
import { applyByGroup } from "./app/apply/apply-by-group.ts";
import type { ApplyItem } from "./app/apply/apply-changes.ts";
import { deviceWriteRules } from "./app/device-keys.ts";
import { type DepsOf, type Handler, lambdaHandler } from "./deps.ts";

/** The envelope ingest wrote; the change inside is checked on its own. */
const EnvelopeSchema = z.object({
  projectId: z.uuid(),
  deviceId: z.uuid(),
  receivedAt: z.iso.datetime(),
  change: z.looseObject({ changeId: z.uuid(), reportId: z.uuid().optional() }),
  keyUnchecked: z.literal(true).optional(),
});

export class UnreadableMessageError extends Error {
  override name = "UnreadableMessageError";
}

/**
 * A message becomes a change to apply, a change to record as rejected, or
 * unreadable. A change ingest queued without reading its device's key and
 * scopes has its signature and scope checked here.
 */
async function toItem(
  db: Queryable,
  record: SQSRecord,
): Promise<ApplyItem | UnreadableMessageError> {
  let body: unknown;
  try {
    body = JSON.parse(record.body);
  } catch {
    return new UnreadableMessageError(`message ${record.messageId} is not JSON`);
  }
  const envelope = EnvelopeSchema.safeParse(body);
  if (!envelope.success)
    return new UnreadableMessageError(`message ${record.messageId} has no readable envelope`);
  const { projectId, deviceId, receivedAt, change: raw, keyUnchecked } = envelope.data;
  const change = ChangeSchema.safeParse(raw);
  if (change.success) {
    const rules = keyUnchecked
      ? await deviceWriteRules(db, { projectId, deviceId, reportIds: [change.data.reportId] })
      : undefined;
    const rejection =
      rules &&
      ((rules.publicKey && signatureRejection(change.data, rules.publicKey)) ||
        scopeRejection(change.data, rules.scopes, rules.reportScopes.get(change.data.reportId)));
    if (!rejection) return { projectId, deviceId, receivedAt, change: change.data };
    const { code, message } = rejection;
    const { changeId, reportId } = change.data;
    return { projectId, deviceId, receivedAt, changeId, reportId, rejection: { code, message } };
  }
  return {
    projectId,
    deviceId,
    receivedAt,
    changeId: raw.changeId,
    reportId: raw.reportId ?? null,
    rejection: { code: "invalid_change", message: "the change does not match the change schema" },
  };
}

/** A message's report (its FIFO message group): order is only kept within one. */
const groupOf = (record: SQSRecord) => record.attributes.MessageGroupId ?? "";

/**
 * SQS FIFO consumer. The batch is applied in one transaction. If that fails,
 * its changes are applied again one transaction each, in order, so a change
 * the database keeps refusing holds back only the changes behind it in its
 * own report: the rest of the batch applies, and the FIFO processor fails
 * the refused message and every later one of its group (skipGroupOnError),
 * which come back in order. A message that keeps failing reaches the DLQ
 * after 5 receives; so does an unreadable one.
 */
export const create = (deps: DepsOf<"consume">): Handler<SQSEvent, SQSBatchResponse> => {
  const processor = new SqsFifoPartialProcessorAsync();
  return async (event, context) => {
    const failures = await applyByGroup(
      deps.db,
      await Promise.all(
        event.Records.map(async (record) => ({
          id: record.messageId,
          group: groupOf(record),
          item: await toItem(deps.db, record),
        })),
      ),
      deps.now,
      (error) =>
        deps.logger.warn("batch not applied at once; applying its changes one by one", { error }),
    );
    for (const [messageId, error] of failures)
      deps.logger.error("message not applied; it will be retried", { messageId, error });
    return processPartialResponse(
      event,
      async (record: SQSRecord) => {
        if (failures.has(record.messageId)) throw failures.get(record.messageId);
      },
      processor,
      // Report every failure as an item failure rather than throwing: the
      // same retry, without logging the batch as a function error.
      { context, throwOnFullBatchFailure: false, skipGroupOnError: true },
    );
  };
};

export const handler = lambdaHandler("consume", create);
