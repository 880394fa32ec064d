import * as z from "zod";
import type { ZodOpenApiResponsesObject } from "zod-openapi";
import { MAX_CHANGES_PER_REQUEST } from "../../core/change.ts";
import * as s from "../../core/wire.ts";
import * as c from "../../core/wire-custody.ts";
import * as f from "../../core/wire-fleet.ts";

export const jsonContent = (schema: z.ZodType) => ({ "application/json": { schema } });

/** What one route takes and answers, as the OpenAPI document describes it (`openapi.ts`). */
export interface Operation {
  operationId: string;
  summary: string;
  description?: string;
  tag: "Identity" | "Sync" | "Read" | "Manage" | "Fleet" | "Service" | "Dashboard";
  query?: z.ZodObject;
  body?: z.ZodType;
  ok: { status: 200 | 201 | 202 | 204; description: string; schema?: z.ZodType; type?: string };
  responses?: ZodOpenApiResponsesObject;
}

const page = (what: string) => `One page of ${what}; \`nextCursor\` fetches the next.`;
const dashboardFile = (operationId: string, what: string, type: string): Operation => ({
  operationId,
  summary: what,
  tag: "Dashboard",
  ok: { status: 200, description: what, type, schema: z.string() },
});

/** What each route of the route table takes and answers, keyed "METHOD path". */
export const operations: Record<string, Operation> = {
  "POST /v1/oauth/token": {
    operationId: "issueToken",
    summary: "Get an access token (OAuth 2.0 client credentials)",
    description:
      "Form body, JSON body, or HTTP Basic client auth. Errors follow RFC 6749 §5.2, not the API's error shape. Ten failed attempts in 15 minutes lock a client out for the rest of the window.",
    tag: "Identity",
    body: s.TokenRequestSchema,
    ok: { status: 200, description: "A bearer token.", schema: s.TokenResponseSchema },
    responses: {
      "400": {
        description: "`invalid_request` or `unsupported_grant_type`.",
        content: jsonContent(s.OAuthErrorSchema),
      },
      "401": { description: "`invalid_client`.", content: jsonContent(s.OAuthErrorSchema) },
      "429": {
        description: "`rate_limited`: too many failed attempts; honour `Retry-After`.",
        content: jsonContent(s.OAuthErrorSchema),
      },
    },
  },
  "GET /.well-known/jwks.json": {
    operationId: "getJwks",
    summary: "The public keys tokens are signed with (ES256)",
    tag: "Identity",
    ok: { status: 200, description: "A JSON Web Key Set.", schema: s.JwksSchema },
  },
  "GET /v1/health": {
    operationId: "getHealth",
    summary: "Whether the database and the queue answer",
    tag: "Service",
    ok: { status: 200, description: "Both answer.", schema: s.HealthSchema },
    responses: {
      "503": { description: "One of them does not.", content: jsonContent(s.HealthSchema) },
    },
  },
  "GET /v1/openapi.json": {
    operationId: "getOpenApi",
    summary: "This document",
    tag: "Service",
    ok: { status: 200, description: "OpenAPI 3.1.", schema: z.record(z.string(), z.unknown()) },
  },
  "GET /": {
    ...dashboardFile("getDashboard", "The dashboard page", "text/html"),
    responses: {
      "301": {
        description:
          "Asked for a stage path without its slash (`/prod`): `Location` is the same path with one, so the page's relative links resolve.",
        headers: { location: { schema: { type: "string" } } },
      },
    },
  },
  "GET /dashboard.js": dashboardFile(
    "getDashboardScript",
    "The dashboard's script",
    "text/javascript",
  ),
  "GET /dashboard.css": dashboardFile("getDashboardStyles", "The dashboard's styles", "text/css"),
  "GET /v1/me": {
    operationId: "getMe",
    summary: "Who the token speaks for",
    tag: "Identity",
    ok: { status: 200, description: "The caller.", schema: s.MeSchema },
  },
  "POST /v1/devices/me/key": {
    operationId: "registerDeviceKey",
    summary: "Register this device's signing key (once)",
    description:
      "From then on every change of the device must carry `sig`, its signature of the change's canonical form, or it is rejected `signature_invalid`. The same key sent again is answered 201 as the first time (a lost answer can be asked again); another key is 409 `conflict`: a key is never replaced.",
    tag: "Identity",
    body: c.DeviceKeyRequestSchema,
    ok: { status: 201, description: "The key as stored.", schema: c.DeviceKeySchema },
    responses: {
      "409": {
        description: "`conflict`: this device has another key already.",
        content: jsonContent(s.ApiErrorSchema),
      },
    },
  },
  "POST /v1/changes": {
    operationId: "pushChanges",
    summary: "Push a batch of changes",
    description: `1 to ${MAX_CHANGES_PER_REQUEST} changes, at most 5 MiB. 202 means the queue holds the accepted ones; their outcomes arrive on \`GET /v1/sync\`. A change whose \`changeId\` cannot be read fails the whole request.`,
    tag: "Sync",
    body: s.ChangeBatchDocSchema,
    ok: { status: 202, description: "Each change's fate.", schema: s.IngestResultSchema },
  },
  "GET /v1/sync": {
    operationId: "pullChanges",
    summary: "Pull what changed since a cursor",
    tag: "Sync",
    query: s.SyncQuerySchema,
    ok: { status: 200, description: "One page.", schema: s.SyncPageSchema },
  },
  "POST /v1/devices": {
    operationId: "registerDevice",
    summary: "Register a device",
    tag: "Manage",
    description:
      "With `scopes`, the device syncs only the reports of those scopes (partial sync); without, the whole project.",
    body: f.DeviceRequestSchema,
    ok: { status: 201, description: "Its credentials.", schema: f.CreatedDeviceSchema },
  },
  "PUT /v1/devices/{id}/scopes": {
    operationId: "setDeviceScopes",
    summary: "Set the scopes a device syncs",
    description:
      "Its next pull delivers the reports of scopes added and lists those of scopes removed in `evict`; from its next push, changes outside them are rejected `scope_forbidden`. No scopes: the whole project.",
    tag: "Manage",
    body: f.DeviceScopesRequestSchema,
    ok: { status: 200, description: "The device's scopes.", schema: f.DeviceScopesSchema },
  },
  "DELETE /v1/devices/{id}": {
    operationId: "revokeDevice",
    summary: "Revoke a device",
    description: "Its credentials stop at once, its tokens within 60 seconds.",
    tag: "Manage",
    ok: { status: 204, description: "Revoked." },
  },
  "POST /v1/members": {
    operationId: "addMember",
    summary: "Add an analyst, auditor or admin",
    tag: "Manage",
    body: f.MemberRequestSchema,
    ok: { status: 201, description: "Their credentials.", schema: f.CreatedMemberSchema },
  },
  "DELETE /v1/members/{id}": {
    operationId: "revokeMember",
    summary: "Revoke an analyst, auditor or admin",
    description:
      "Their credentials stop at once, their tokens within 60 seconds. Their entries in the audit log stay as they are.",
    tag: "Manage",
    ok: { status: 204, description: "Revoked." },
    responses: {
      "409": {
        description:
          "`last_admin`: the project's only admin whose credentials work; add another admin first.",
        content: jsonContent(s.ApiErrorSchema),
      },
    },
  },
  "POST /v1/projects": {
    operationId: "createProject",
    summary: "Create a project with its first admin (operator)",
    tag: "Manage",
    body: f.NameSchema,
    ok: { status: 201, description: "The project.", schema: f.CreatedProjectSchema },
  },
  "GET /v1/reports": {
    operationId: "listReports",
    summary: "Search reports",
    description:
      "Newest created first; pages neither skip nor repeat a report while reports are written.",
    tag: "Read",
    query: s.ReportQuerySchema,
    ok: { status: 200, description: page("reports"), schema: s.ReportPageSchema },
  },
  "GET /v1/reports/{id}": {
    operationId: "getReport",
    summary: "One report",
    tag: "Read",
    ok: { status: 200, description: "The report.", schema: s.ReportSchema },
  },
  "POST /v1/erasures": {
    operationId: "eraseReport",
    summary: "Erase a report's values for a data-protection request (admin)",
    description:
      "In one transaction the values become null in the report (clocks kept, `erased` lists the fields), in its audit entries (their digests kept, so `GET /v1/audit/verify` still passes) and in its conflicts; the erasure is appended to the report's audit chain. Every device removes its copies when its next pull delivers the erasure; `devicesPending` counts those that have not yet.",
    tag: "Manage",
    body: c.ErasureRequestSchema,
    ok: { status: 201, description: "The erasure.", schema: c.ErasureSchema },
    responses: {
      "409": {
        description: "`legal_hold`: the report is under legal hold.",
        content: jsonContent(s.ApiErrorSchema),
      },
    },
  },
  "PUT /v1/reports/{id}/hold": {
    operationId: "holdReport",
    summary: "Put a report under legal hold (admin, auditor)",
    description:
      "While held, erasing the report is 409 `legal_hold` and retention leaves it alone. Again: the reason is replaced.",
    tag: "Manage",
    body: c.HoldRequestSchema,
    ok: { status: 200, description: "The hold.", schema: c.HoldSchema },
  },
  "DELETE /v1/reports/{id}/hold": {
    operationId: "releaseReport",
    summary: "Lift a report's legal hold (admin, auditor)",
    tag: "Manage",
    ok: { status: 204, description: "Lifted (or there was none)." },
  },
  "PATCH /v1/project": {
    operationId: "updateProject",
    summary: "Set how long deleted reports keep their values (admin)",
    description:
      "A schedule (hourly) erases the values of reports deleted more than `retainDeletedDays` days ago (by the tombstone's clock), held ones excepted, each as an erasure with reason `retention` by the nil id (the service).",
    tag: "Manage",
    body: c.ProjectSettingsSchema,
    ok: { status: 200, description: "The project's settings.", schema: c.ProjectSchema },
  },
  "GET /v1/erasures/{id}": {
    operationId: "getErasure",
    summary: "An erasure, and how many devices have yet to carry it out",
    tag: "Read",
    ok: { status: 200, description: "The erasure.", schema: c.ErasureSchema },
  },
  "GET /v1/reports/{id}/evidence": {
    operationId: "getReportEvidence",
    summary: "A report's evidence bundle (auditor, admin)",
    description:
      "Self-contained: the report, its whole history with hashes and signatures, the chain head and the signing devices' public keys. `npx edge-sync verify-evidence FILE` checks it with no database and no network.",
    tag: "Read",
    ok: { status: 200, description: "The bundle.", schema: c.EvidenceBundleSchema },
    responses: {
      "303": {
        description:
          "The bundle is too large for a response (about 6 MB): it is at `Location`, a link that needs no credentials and works for 15 minutes. HTTP clients that follow redirects get the bundle.",
        headers: { location: { schema: { type: "string" } } },
        content: jsonContent(c.ExportLinkSchema),
      },
    },
  },
  "GET /v1/reports/{id}/history": {
    operationId: "getReportHistory",
    summary: "A report's audit entries, oldest first",
    tag: "Read",
    query: s.HistoryQuerySchema,
    ok: { status: 200, description: page("a report's audit entries"), schema: s.HistorySchema },
  },
  "GET /v1/conflicts": {
    operationId: "listConflicts",
    summary: "Conflicts, newest first",
    tag: "Read",
    query: s.ConflictQuerySchema,
    ok: { status: 200, description: page("conflicts"), schema: s.ConflictPageSchema },
  },
  "GET /v1/devices": {
    operationId: "listDevices",
    summary: "Devices with their sync counters and health",
    tag: "Read",
    query: f.DeviceQuerySchema,
    ok: {
      status: 200,
      description: "The project's devices, oldest first, in pages.",
      schema: f.DeviceListSchema,
    },
  },
  "GET /v1/members": {
    operationId: "listMembers",
    summary: "The project's analysts, auditors and admins",
    description: "Revoked members too, so that every actor the audit log names has a name.",
    tag: "Read",
    query: f.MemberQuerySchema,
    ok: {
      status: 200,
      description: page("the project's members, oldest first"),
      schema: f.MemberListSchema,
    },
  },
  "GET /v1/devices/{id}/scopes": {
    operationId: "getDeviceScopeHistory",
    summary: "Every setting of a device's scopes, with who set them (auditor, admin)",
    tag: "Read",
    query: s.HistoryQuerySchema,
    ok: {
      status: 200,
      description: page("a device's scope settings, oldest first"),
      schema: f.ScopeHistorySchema,
    },
  },
  "GET /v1/status": {
    operationId: "getStatus",
    summary: "Queue depth and counts",
    tag: "Read",
    ok: { status: 200, description: "The project's sync status.", schema: f.StatusSchema },
  },
  "GET /v1/audit": {
    operationId: "listAudit",
    summary: "The audit log, newest first",
    tag: "Read",
    query: s.AuditQuerySchema,
    ok: { status: 200, description: page("audit entries"), schema: s.AuditPageSchema },
  },
  "GET /v1/audit/verify": {
    operationId: "verifyAudit",
    summary: "Recompute the audit hash chains",
    description:
      "Recomputes every hash chain of the project and checks every signature. A call checks entries for about 5 seconds (or `limit` entries): a larger project is checked in parts, each call going on from the last one's `nextCursor` until `complete` is true. Sum `checked`, `signed` and `unsigned` over the parts; the lowest `firstBadSeq` of any part is the first bad entry.",
    tag: "Read",
    query: c.AuditVerifyQuerySchema,
    ok: {
      status: 200,
      description: "Whether every chain holds, or every entry checked so far.",
      schema: c.AuditVerifySchema,
    },
  },
  "GET /v1/activity": {
    operationId: "listActivity",
    summary: "Who changed who may do what, and who took data out (auditor, admin)",
    description:
      "The project's activity log: devices and members added and revoked, scopes set, legal holds placed and lifted, retention set, evidence exported, dead-lettered changes redriven, each with who, when and what was set. Append-only and hash-chained like the audit log; `GET /v1/audit/verify` checks its chain.",
    tag: "Read",
    query: f.ActivityQuerySchema,
    ok: {
      status: 200,
      description: page("the project's activity, oldest first"),
      schema: f.ActivityListSchema,
    },
  },
  "GET /v1/dlq": {
    operationId: "listDeadLetters",
    summary: "Changes the consumer gave up on",
    description:
      "The project's dead-lettered changes: each failed on every one of its 5 receives. Up to 100 are looked at per call, and at most 10 of one report.",
    tag: "Fleet",
    ok: { status: 200, description: "The project's dead letters.", schema: f.DeadLetterListSchema },
  },
  "POST /v1/dlq/redrive": {
    operationId: "redriveDeadLetters",
    summary: "Put dead-lettered changes back on the queue",
    description:
      "They apply, or are recorded `rejected`, like any other change. `{}` moves all of the project's.",
    tag: "Fleet",
    body: f.RedriveRequestSchema,
    ok: { status: 200, description: "How many moved.", schema: f.RedriveResultSchema },
  },
};
