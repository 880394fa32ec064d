import type { ScheduledEvent } from "aws-lambda";
import { runRetention } from "./app/erasure.ts";
import { type DepsOf, type Handler, lambdaHandler } from "./deps.ts";

/**
 * How long one run erases before it leaves the rest to the next: 4 of the
 * function's 5 minutes.
 */
const RETENTION_RUN_MS = 4 * 60 * 1000;

/**
 * Retention, on a schedule (an EventBridge rule on AWS, a timer in the local
 * cloud): erases the values of deleted reports past their project's
 * `retainDeletedDays`, held reports excepted (`runRetention`). A report
 * whose erasure failed is logged and the run fails at its end, after every
 * other report: the function's error alarm fires, and the next run tries
 * it again.
 */
export const create =
  (deps: DepsOf<"retention">): Handler<ScheduledEvent, { erased: number; left: number }> =>
  async () => {
    const run = await runRetention(deps.db, deps.now, {
      deadline: deps.now() + RETENTION_RUN_MS,
    });
    if (run.made.length || run.left)
      deps.logger.info("retention erased deleted reports", {
        erased: run.made.length,
        left: run.left,
      });
    for (const { projectId, reportId, error } of run.failed)
      deps.logger.error("retention could not erase a report", { projectId, reportId, error });
    if (run.failed.length)
      throw new Error(
        `Retention could not erase ${run.failed.length} report(s); the next run tries again.`,
      );
    return { erased: run.made.length, left: run.left };
  };

export const handler = lambdaHandler("retention", create);
