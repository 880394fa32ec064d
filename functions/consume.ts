import { processPartialResponse, SqsFifoPartialProcessorAsync } from "@aws-lambda-powertools/batch";
import type { SQSBatchResponse, SQSEvent, SQSRecord } from "aws-lambda";
import { z } from "zod";
import { ChangeSchema } from "../core/change.ts";
import { type ApplyItem, applyChanges } from "./lib/apply-changes.ts";
import { type Deps, type Handler, lambdaHandler } from "./lib/deps.ts";

/** The envelope ingest wrote; the change inside is checked on its own. */
const EnvelopeSchema = z.object({
  projectId: z.uuid(),
  deviceId: z.uuid(),
  receivedAt: z.iso.datetime(),
  change: z.looseObject({ changeId: z.uuid(), reportId: z.uuid().optional() }),
});

export class UnreadableMessageError extends Error {
  override name = "UnreadableMessageError";
}

/** A message becomes a change to apply, a change to record as rejected, or unreadable. */
function toItem(record: SQSRecord): ApplyItem | UnreadableMessageError {
  let body: unknown;
  try {
    body = JSON.parse(record.body);
  } catch {
    return new UnreadableMessageError(`message ${record.messageId} is not JSON`);
  }
  const envelope = EnvelopeSchema.safeParse(body);
  if (!envelope.success)
    return new UnreadableMessageError(`message ${record.messageId} has no readable envelope`);
  const { projectId, deviceId, receivedAt, change: raw } = envelope.data;
  const change = ChangeSchema.safeParse(raw);
  if (change.success) return { projectId, deviceId, receivedAt, change: change.data };
  return {
    projectId,
    deviceId,
    receivedAt,
    changeId: raw.changeId,
    reportId: raw.reportId ?? null,
    rejection: { code: "invalid_change", message: "the change does not match the change schema" },
  };
}

/**
 * SQS FIFO consumer. The batch is applied in one transaction; then the FIFO
 * processor reports failures: at the first failed message it fails that one
 * and every later one, so each message group keeps its order on retry.
 * Unreadable messages fail on every receive and reach the DLQ after 5.
 */
export const create = (deps: Deps): Handler<SQSEvent, SQSBatchResponse> => {
  const processor = new SqsFifoPartialProcessorAsync();
  return async (event, context) => {
    const items = event.Records.map(toItem);
    // Apply only the readable prefix: everything after an unreadable message
    // is failed by the FIFO processor anyway and will come back in order.
    const firstBad = items.findIndex((i) => i instanceof UnreadableMessageError);
    const applicable = (firstBad < 0 ? items : items.slice(0, firstBad)) as ApplyItem[];
    let batchError: unknown;
    try {
      await applyChanges(deps.db, applicable, deps.now);
    } catch (error) {
      batchError = error;
      deps.logger.error("batch not applied; it will be retried", {
        error,
        size: applicable.length,
      });
    }
    const byMessageId = new Map(event.Records.map((r, i) => [r.messageId, items[i]!]));
    return processPartialResponse(
      event,
      async (record: SQSRecord) => {
        const item = byMessageId.get(record.messageId);
        if (item instanceof UnreadableMessageError) {
          deps.logger.error("unreadable message", { messageId: record.messageId });
          throw item;
        }
        if (batchError) throw batchError;
      },
      processor,
      // Report every failure as an item failure rather than throwing: the
      // same retry, without logging the batch as a function error.
      { context, throwOnFullBatchFailure: false },
    );
  };
};

export const handler = lambdaHandler(create);
