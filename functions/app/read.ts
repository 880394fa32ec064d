import * as z from "zod";
import { NotFoundError } from "../../core/errors.ts";
import type { JsonObject } from "../../core/json.ts";
import type { Outcome } from "../../core/merge.ts";
import type { AuditEntry, Conflict, Report } from "../../core/types.ts";
import type { Db, Queryable } from "../adapters/db/db.ts";
import { decode, keysetPage, newestFirst, type Page, Where } from "./listing.ts";
import { CONFLICT_COLUMNS, REPORT_COLUMNS, type ReportRow, toConflict, toReport } from "./rows.ts";
import { projectTally } from "./tallies.ts";

/** A LIKE pattern matching `text` anywhere, with LIKE's own wildcards escaped. */
const anywhere = (text: string) => `%${text.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;

/**
 * `q`: a case-insensitive substring of one of the report's string values.
 * The search column holds those values as lowercased JSON text (migration
 * 013), so `q` lowercased and JSON-escaped the same way is in it wherever
 * it is in a value; the index over the project and that text (migration
 * 015) finds those candidates. The text's escapes and its array's
 * brackets, quotes and commas can match too (`n` in an escaped newline,
 * `", "` between two values), so each candidate's values are then checked
 * themselves.
 */
function matching(where: Where, q: string): void {
  const lower = q.toLowerCase();
  where
    .filterWithProject(
      (p) =>
        `array[project_id] @> array[${where.project}::uuid] and search like ${p(anywhere(JSON.stringify(lower).slice(1, -1)))}`,
    )
    .check(
      (p) => `exists (select from jsonb_each(fields) as f(key, value)
                       where jsonb_typeof(value) = 'string' and lower(value #>> '{}') like ${p(anywhere(lower))})`,
    );
}

export interface ReportQuery {
  q?: string;
  scope?: string;
  updatedAfter?: string;
  updatedBefore?: string;
  deleted: "false" | "true" | "any";
  limit: number;
  cursor?: string;
}

const ReportCursor = z.tuple([z.string().max(64), z.uuid()]);

/** Reports of a project, newest first (keyset on created_at, id, which never change). */
export async function listReports(
  db: Db,
  projectId: string,
  query: ReportQuery,
): Promise<Page<Report>> {
  const after = decode(query.cursor, ReportCursor);
  const where = new Where(projectId);
  // Served by the index over the project and the generated search column.
  if (query.q) matching(where, query.q);
  // Served by the scoped pull's index (project, scope, …).
  if (query.scope) where.filter((p) => `scope = ${p(query.scope)}`);
  if (query.updatedAfter) where.filter((p) => `updated_at > ${p(query.updatedAfter)}`);
  if (query.updatedBefore) where.filter((p) => `updated_at < ${p(query.updatedBefore)}`);
  // Most reports are not deleted: the walk finds them.
  if (query.deleted === "false") where.add(() => "deleted_hlc is null");
  if (query.deleted === "true") where.filter(() => "deleted_hlc is not null");
  return newestFirst(db, where, after, query.limit, {
    table: "reports",
    columns: REPORT_COLUMNS,
    time: "created_at",
    map: toReport,
  });
}

export async function getReport(db: Queryable, projectId: string, id: string): Promise<Report> {
  const [row] = await db.query<ReportRow>(
    `select ${REPORT_COLUMNS} from reports where project_id = $1 and id = $2`,
    [projectId, id],
  );
  if (!row) throw new NotFoundError("No such report.");
  return toReport(row);
}

interface AuditRow {
  seq: number;
  change_id: string;
  report_id: string | null;
  actor_type: "device" | "member";
  actor_id: string;
  op: "upsert" | "delete" | "erase";
  hlc: string | null;
  outcome: Outcome;
  code: string | null;
  fields_applied: string[];
  fields_superseded: string[];
  before: JsonObject;
  after: JsonObject;
  received_at: Date;
  applied_at: Date;
  prev_hash: string | null;
  hash: string | null;
  sig: string | null;
  message: string | null;
  erased: string[];
}

const AUDIT_COLUMNS =
  "seq, change_id, report_id, actor_type, actor_id, op, hlc, outcome, code, fields_applied, fields_superseded, before, after, received_at, applied_at, prev_hash, hash, sig, message, " +
  // Which values were erased (their digests themselves stay in the evidence).
  "array(select k from jsonb_object_keys(erased_digests) as k where k not like 'signed:%' order by k) as erased";

function toAuditEntry(row: AuditRow): AuditEntry {
  return {
    seq: row.seq,
    changeId: row.change_id,
    reportId: row.report_id ?? "",
    actor: { type: row.actor_type, id: row.actor_id },
    op: row.op,
    hlc: row.hlc,
    outcome: row.outcome,
    fieldsApplied: row.fields_applied,
    fieldsSuperseded: row.fields_superseded,
    before: row.before,
    after: row.after,
    receivedAt: row.received_at.toISOString(),
    appliedAt: row.applied_at.toISOString(),
    prevHash: row.prev_hash,
    hash: row.hash,
    ...(row.code ? { code: row.code } : {}),
    sig: row.sig,
    ...(row.op === "erase" ? { reason: row.message ?? "" } : {}),
    ...(row.erased.length ? { erased: row.erased } : {}),
  };
}

/** A report's audit trail, oldest first, a page at a time; 404 when the project has no such report. */
export async function reportHistory(
  db: Queryable,
  projectId: string,
  id: string,
  query: { limit: number; cursor?: string },
): Promise<Page<AuditEntry>> {
  const after = decode(query.cursor, z.tuple([z.number().int().positive()]));
  const rows = await db.query<AuditRow>(
    `select ${AUDIT_COLUMNS} from audit_log
      where project_id = $1 and report_id = $2 and seq > $3 order by seq limit ${query.limit + 1}`,
    [projectId, id, after?.[0] ?? 0],
  );
  if (rows.length === 0 && !after) await getReport(db, projectId, id);
  return keysetPage(rows, query.limit, toAuditEntry, (r) => [r.seq]);
}

export interface AuditQuery {
  actor?: string;
  reportId?: string;
  after?: string;
  before?: string;
  limit: number;
  cursor?: string;
}

/** The project's audit log, newest first, filtered by actor, report and time applied. */
export async function listAudit(
  db: Queryable,
  projectId: string,
  query: AuditQuery,
): Promise<Page<AuditEntry>> {
  const after = decode(query.cursor, z.tuple([z.number().int().positive()]));
  const where = new Where(projectId);
  if (query.actor) where.add((p) => `actor_id = ${p(query.actor)}`);
  if (query.reportId) where.add((p) => `report_id = ${p(query.reportId)}`);
  if (query.after) where.add((p) => `applied_at > ${p(query.after)}`);
  if (query.before) where.add((p) => `applied_at < ${p(query.before)}`);
  if (after) where.add((p) => `seq < ${p(after[0])}`);
  const rows = await db.query<AuditRow>(
    `select ${AUDIT_COLUMNS} from audit_log where ${where.sql} order by seq desc limit ${query.limit + 1}`,
    where.params,
  );
  return keysetPage(rows, query.limit, toAuditEntry, (r) => [r.seq]);
}

export interface ConflictQuery {
  reportId?: string;
  after?: string;
  limit: number;
  cursor?: string;
}

/** The project's conflicts, newest first. */
export async function listConflicts(
  db: Db,
  projectId: string,
  query: ConflictQuery,
): Promise<Page<Conflict>> {
  const after = decode(query.cursor, z.tuple([z.string().max(64), z.uuid()]));
  const where = new Where(projectId);
  if (query.reportId) where.filter((p) => `report_id = ${p(query.reportId)}`);
  if (query.after) where.filter((p) => `detected_at > ${p(query.after)}`);
  return newestFirst(db, where, after, query.limit, {
    table: "conflicts",
    columns: CONFLICT_COLUMNS,
    time: "detected_at",
    map: toConflict,
  });
}

/** A nullable time as the API writes it. */
export const iso = (d: Date | null) => (d ? d.toISOString() : null);

/** Counts and the last time a change was applied, for GET /v1/status. */
export async function projectCounts(db: Queryable, projectId: string) {
  const tally = await projectTally(db, projectId);
  const [row] = await db.query<{
    last_applied_at: Date | null;
    devices: number;
  }>(
    `select (select applied_at from audit_log where project_id = $1 order by seq desc limit 1) as last_applied_at,
            (select count(*)::int from devices where project_id = $1 and revoked_at is null) as devices`,
    [projectId],
  );
  return {
    lastAppliedAt: iso(row!.last_applied_at),
    reports: tally.live,
    conflicts: tally.conflicts,
    devices: row!.devices,
  };
}
