import * as z from "zod";
import { NotFoundError } from "../core/errors.ts";
import {
  AuditQuerySchema,
  ConflictQuerySchema,
  HistoryQuerySchema,
  NoQuerySchema,
  ReportQuerySchema,
} from "../core/wire.ts";
import { DeviceQuerySchema, MemberQuerySchema } from "../core/wire-fleet.ts";
import { deviceScopeHistory, listDevices } from "./app/fleet.ts";
import { listMembers } from "./app/identity.ts";
import {
  getReport,
  listAudit,
  listConflicts,
  listReports,
  projectCounts,
  reportHistory,
} from "./app/read.ts";
import { type DepsOf, lambdaHandler } from "./deps.ts";
import { apiRoute, callerProject, queryOf as query } from "./http/api-route.ts";
import { type ApiEvent, json } from "./http/middleware.ts";

/** A path id: anything but a UUID names no resource. */
function idOf(event: ApiEvent, what = "report"): string {
  const id = event.pathParameters?.id ?? "";
  if (!z.uuid().safeParse(id).success) throw new NotFoundError(`No such ${what}.`);
  return id;
}

/**
 * The read API for a project's analysts, auditors and admins: reports,
 * their history, conflicts, devices (and, for auditors and admins, the
 * history of each one's scopes), members, sync status and the audit log. Every
 * query is scoped by the token's project.
 */
export const create = (deps: DepsOf<"read">) =>
  apiRoute(deps).handler(async (event) => {
    const projectId = callerProject(event);
    switch (event.resource) {
      case "/v1/reports":
        return json(200, await listReports(deps.db, projectId, query(ReportQuerySchema, event)));
      case "/v1/reports/{id}":
        query(NoQuerySchema, event);
        return json(200, await getReport(deps.db, projectId, idOf(event)));
      case "/v1/reports/{id}/history":
        return json(
          200,
          await reportHistory(deps.db, projectId, idOf(event), query(HistoryQuerySchema, event)),
        );
      case "/v1/conflicts":
        return json(
          200,
          await listConflicts(deps.db, projectId, query(ConflictQuerySchema, event)),
        );
      case "/v1/devices":
        return json(
          200,
          await listDevices(deps.db, projectId, deps.now(), query(DeviceQuerySchema, event)),
        );
      case "/v1/devices/{id}/scopes":
        return json(
          200,
          await deviceScopeHistory(
            deps.db,
            projectId,
            idOf(event, "device"),
            query(HistoryQuerySchema, event),
          ),
        );
      case "/v1/members":
        return json(200, await listMembers(deps.db, projectId, query(MemberQuerySchema, event)));
      case "/v1/status": {
        query(NoQuerySchema, event);
        const [queue, counts] = await Promise.all([
          deps.queueDepth.depth(),
          projectCounts(deps.db, projectId),
        ]);
        return json(200, { queue, ...counts });
      }
      case "/v1/audit":
        return json(200, await listAudit(deps.db, projectId, query(AuditQuerySchema, event)));
      default:
        throw new NotFoundError("No such route.");
    }
  });

export const handler = lambdaHandler("read", create);
