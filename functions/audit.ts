import * as z from "zod";
import { NotFoundError, ValidationError } from "../core/errors.ts";
import {
  AuditVerifyQuerySchema,
  ErasureRequestSchema,
  HoldRequestSchema,
  ProjectSettingsSchema,
} from "../core/wire-custody.ts";
import { ActivityQuerySchema } from "../core/wire-fleet.ts";
import type { Queryable } from "./adapters/db/db.ts";
import { type Activity, listActivity, verifyActivity, withActivity } from "./app/activity.ts";
import { verifyAuditPart } from "./app/audit.ts";
import {
  eraseReport,
  erasureById,
  holdReport,
  releaseReport,
  setRetention,
} from "./app/erasure.ts";
import { reportEvidence } from "./app/evidence.ts";
import { type DepsOf, lambdaHandler } from "./deps.ts";
import { apiRoute, callerActing, callerProject, queryOf as query } from "./http/api-route.ts";
import { type ApiEvent, json, jsonOrLink, noContent, principalOf } from "./http/middleware.ts";

/** The body, read with its schema. */
function body<T>(schema: z.ZodType<T>, event: ApiEvent): T {
  const parsed = schema.safeParse(event.parsedBody);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new ValidationError(`${issue.path.join(".") || "body"}: ${issue.message}`);
  }
  return parsed.data;
}

/**
 * How long one call of `GET /v1/audit/verify` checks entries before it
 * answers with where to go on: well within the function's 28 seconds (and
 * API Gateway's 29), so reading the last page and answering fit, and
 * short enough that a client sees progress.
 */
const VERIFY_SECONDS = 5;

/** A path id: anything but a UUID names nothing. */
function idOf(event: ApiEvent, what: string): string {
  const id = event.pathParameters?.id ?? "";
  if (!z.uuid().safeParse(id).success) throw new NotFoundError(`No such ${what}.`);
  return id;
}

/**
 * Custody and data protection: `GET /v1/audit/verify` recomputes the
 * project's hash chains and checks every signature, in parts of at most
 * VERIFY_SECONDS each for a project too large for one call;
 * `GET /v1/reports/{id}/evidence` exports one report's evidence bundle, to be
 * checked offline (one too large for a response as a download link);
 * `POST /v1/erasures` carries out a data-protection erasure and
 * `GET /v1/erasures/{id}` says how far the devices are with it; a
 * report's legal hold (`PUT`/`DELETE /v1/reports/{id}/hold`) blocks both
 * erasure and retention (`PATCH /v1/project` `retainDeletedDays`).
 */
export const create = (deps: DepsOf<"audit">) =>
  apiRoute(deps, { body: { maxBytes: 64 * 1024, maxDepth: 4 } }).handler(async (event) => {
    const projectId = callerProject(event);
    /** Does `work` and records it in the project's activity log, in one transaction. */
    const recorded = <T>(activity: Omit<Activity, "actor">, work: (tx: Queryable) => Promise<T>) =>
      withActivity(deps.db, callerActing(deps, event), work, () => activity);
    switch (`${event.httpMethod} ${event.resource}`) {
      case "GET /v1/reports/{id}/evidence": {
        const reportId = idOf(event, "report");
        const bundle = await reportEvidence(deps.db, projectId, reportId, deps.now);
        // Who took a copy of a report's whole history out: recorded before
        // it is handed over, so no copy leaves unrecorded.
        const details = { entries: bundle.history.length };
        await recorded({ action: "evidence.export", targetId: reportId, details }, async () => {});
        const answer = await jsonOrLink(deps.exports, "evidence", bundle, deps.now);
        deps.logger.info("evidence exported", {
          reportId,
          by: principalOf(event).sub,
          entries: bundle.history.length,
          byLink: answer.statusCode === 303,
        });
        return answer;
      }
      case "POST /v1/erasures": {
        const erasure = await eraseReport(
          deps.db,
          projectId,
          principalOf(event).sub,
          body(ErasureRequestSchema, event),
          deps.now,
        );
        deps.logger.info("erasure carried out", {
          erasureId: erasure.id,
          reportId: erasure.reportId,
          fields: erasure.fields.length,
        });
        return json(201, erasure);
      }
      case "PUT /v1/reports/{id}/hold": {
        const { reason } = body(HoldRequestSchema, event);
        const id = idOf(event, "report");
        const held = await recorded(
          { action: "hold.place", targetId: id, details: { reason } },
          (tx) => holdReport(tx, projectId, id, principalOf(event).sub, reason),
        );
        return json(200, held);
      }
      case "DELETE /v1/reports/{id}/hold": {
        const id = idOf(event, "report");
        await recorded({ action: "hold.lift", targetId: id, details: {} }, (tx) =>
          releaseReport(tx, projectId, id),
        );
        return noContent();
      }
      case "PATCH /v1/project": {
        const { retainDeletedDays } = body(ProjectSettingsSchema, event);
        const settings = await recorded(
          { action: "retention.set", targetId: projectId, details: { retainDeletedDays } },
          (tx) => setRetention(tx, projectId, retainDeletedDays),
        );
        return json(200, settings);
      }
      case "GET /v1/activity":
        return json(200, await listActivity(deps.db, projectId, query(ActivityQuerySchema, event)));
      case "GET /v1/erasures/{id}":
        return json(200, await erasureById(deps.db, projectId, idOf(event, "erasure")));
      default: {
        const { limit, cursor } = query(AuditVerifyQuerySchema, event);
        const deadline = deps.now() + VERIFY_SECONDS * 1000;
        const part = await verifyAuditPart(deps.db, projectId, {
          cursor,
          limit,
          deadline,
          now: deps.now,
        });
        if (cursor) return json(200, part);
        const activity = await verifyActivity(deps.db, projectId);
        return json(200, { ...part, ok: part.ok && activity.ok, activity });
      }
    }
  });

export const handler = lambdaHandler("audit", create);
