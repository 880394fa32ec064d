import type { ScheduledEvent } from "aws-lambda";
import { runRetention } from "./app/erasure.ts";
import { type DepsOf, type Handler, lambdaHandler } from "./deps.ts";

/**
 * Retention, on a schedule (an EventBridge rule on AWS, a timer in the local
 * cloud): erases the values of deleted reports past their project's
 * `retainDeletedDays`, held reports excepted (`runRetention`).
 */
export const create =
  (deps: DepsOf<"retention">): Handler<ScheduledEvent, { erased: number }> =>
  async () => {
    const erasures = await runRetention(deps.db, deps.now);
    if (erasures.length)
      deps.logger.info("retention erased deleted reports", { erased: erasures.length });
    return { erased: erasures.length };
  };

export const handler = lambdaHandler("retention", create);
