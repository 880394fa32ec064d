import type { MiddlewareObj } from "@middy/core";
import type { APIGatewayProxyResult } from "aws-lambda";
import { EdgeSyncError } from "../../core/errors.ts";
import { type DeviceRequest, recordDeviceRequest } from "../app/fleet.ts";
import type { Deps } from "../deps.ts";
import { type ApiEvent, header, principalOf } from "./middleware.ts";

/**
 * Records a device request that ended in an error (refused or failed),
 * before the error becomes the response. The handler records the ones it
 * answers itself.
 */
export function recordDeviceErrors(
  deps: Pick<Deps, "db" | "logger">,
  kind: DeviceRequest["kind"],
): MiddlewareObj<ApiEvent, APIGatewayProxyResult> {
  return {
    onError: async ({ event, error }) => {
      let deviceId: string;
      try {
        const principal = principalOf(event);
        if (principal.role !== "device") return;
        deviceId = principal.sub;
      } catch {
        return;
      }
      const known = error instanceof EdgeSyncError;
      const status = known ? error.statusCode : 500;
      await recordDeviceRequest(deps.db, deviceId, {
        kind,
        answered: false,
        accepted: 0,
        userAgent: header(event, "user-agent"),
        error: {
          code: known ? error.code : "internal",
          message: known && status < 500 ? error.message : "the cloud failed to answer",
          // Throttling and outages pass; anything else 4xx will not.
          refused: status >= 400 && status < 500 && status !== 429,
        },
      }).catch((recordError) =>
        deps.logger.warn("device activity not recorded", { error: recordError }),
      );
    },
  };
}

/**
 * Records a request the handler answered: its counters, and for a push that
 * left changes unqueued, the first failure. After the work is done and best
 * effort: the bookkeeping must never cost a change.
 */
export async function recordAnswered(
  deps: Pick<Deps, "db" | "logger">,
  event: ApiEvent,
  kind: DeviceRequest["kind"],
  result: { accepted: string[]; failed: { code: string; message: string }[] } = {
    accepted: [],
    failed: [],
  },
): Promise<void> {
  const [failure] = result.failed;
  await recordDeviceRequest(deps.db, principalOf(event).sub, {
    kind,
    answered: true,
    accepted: result.accepted.length,
    userAgent: header(event, "user-agent"),
    ...(failure ? { error: { code: failure.code, message: failure.message, refused: false } } : {}),
  }).catch((error) => deps.logger.warn("device activity not recorded", { error }));
}
