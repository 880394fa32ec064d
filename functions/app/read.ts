import * as z from "zod";
import { NotFoundError, ValidationError } from "../../core/errors.ts";
import type { JsonObject } from "../../core/json.ts";
import type { Outcome } from "../../core/merge.ts";
import type { AuditEntry, Conflict, Report } from "../../core/types.ts";
import type { Db, Queryable } from "../adapters/db/db.ts";
import { PAGE_BYTES } from "./pull.ts";
import { CONFLICT_COLUMNS, REPORT_COLUMNS, type ReportRow, toConflict, toReport } from "./rows.ts";

/** A page of a listing; `nextCursor` is null on the last page. */
export interface Page<T> {
  items: T[];
  nextCursor: string | null;
}

const encode = (key: unknown[]) => Buffer.from(JSON.stringify(key)).toString("base64url");

/**
 * A page from `limit + 1` rows: the extra row only says there is more, and
 * the last row kept gives the next cursor's key. A page also ends where its
 * items would pass PAGE_BYTES as JSON (it always has one): an answer comes
 * through Lambda, which refuses a response over 6 MB, and a report can hold
 * 2 MiB, an audit entry twice a change's 256 KiB.
 */
function keysetPage<R, T>(
  rows: R[],
  limit: number,
  map: (row: R) => T,
  key: (row: R) => unknown[],
): Page<T> {
  const items: T[] = [];
  let budget = PAGE_BYTES;
  let last: R | undefined;
  for (const row of rows.slice(0, limit)) {
    const item = map(row);
    const bytes = Buffer.byteLength(JSON.stringify(item));
    if (items.length > 0 && bytes > budget) break;
    budget -= bytes;
    items.push(item);
    last = row;
  }
  return {
    items,
    nextCursor: rows.length > items.length && last ? encode(key(last)) : null,
  };
}

/** Rows a listing walks newest first along its index before a filter's own index takes over. */
const WALK = 2000;

/** Planner settings for the walk, for its transaction only: an ordered index scan, stopped early. */
const ALONG_THE_INDEX =
  "set_config('enable_sort', 'off', true), set_config('enable_seqscan', 'off', true), set_config('enable_bitmapscan', 'off', true)";
/**
 * Then, for selective filters: their own indexes (bitmap scans), sorted, and
 * still no sequential scan. Sampled statistics can put a `q` matching one
 * report in a hundred at one in twenty-five, where reading the whole
 * project would be the cheaper guess; it is never cheap at 100,000 reports.
 */
const BY_THE_FILTERS =
  "set_config('enable_sort', 'on', true), set_config('enable_bitmapscan', 'on', true)";

/**
 * One page of a table, newest first by (time, id) as a keyset, so a walk
 * through the pages sees every row once even while rows are added. The time
 * is selected as text under another name (`page_key`), never as itself:
 * ORDER BY must bind to the column, and the cursor keeps full precision.
 *
 * The plan does not depend on statistics (a new, restored or bulk-loaded
 * database has none, and its planner would sort the whole project for one
 * page). First the newest WALK rows past the cursor are read along the
 * (project, time, id) index and filtered: a page without filters, or with
 * filters most rows pass (a common word), ends there. If that leaves the
 * page short, the filters are selective: the rows matching them are found
 * through their own indexes (trigrams, update time), only their keys kept
 * and sorted, and then read newest first by primary key, each put to the
 * checks, until the page is full. Thousands of candidates cost a sort of
 * keys; only the page's rows are read whole and checked.
 */
async function newestFirst<R, T>(
  db: Db,
  where: Where,
  after: [string, string] | undefined,
  limit: number,
  {
    table,
    columns,
    time,
    map,
  }: { table: string; columns: string; time: string; map: (row: R) => T },
): Promise<Page<T>> {
  if (after)
    where.add((p) => `(${time}, id) < (${p(after[0])}::timestamptz, ${p(after[1])}::uuid)`);
  const select = `select ${columns}, ${time}::text as page_key`;
  const order = `order by ${time} desc, id desc`;
  const rows = await db.transaction(async (tx) => {
    await tx.query(`select ${ALONG_THE_INDEX}`);
    type Row = R & { id: string; page_key: string };
    const walked = await tx.query<Row>(
      where.filters
        ? `${select} from (select * from ${table} where ${where.base} ${order} limit ${WALK}) as newest
            where ${where.filters} and ${where.checks} ${order} limit ${limit + 1}`
        : `${select} from ${table} where ${where.base} ${order} limit ${limit + 1}`,
      where.params,
    );
    if (walked.length > limit || !where.filters) return walked;
    await tx.query(`select ${BY_THE_FILTERS}`);
    // The candidates' keys, sorted; then each row by its key (`limit 1`
    // keeps that a lookup per candidate), in that order, until the page is full.
    return tx.query<Row>(
      `with candidates as materialized
         (select ${time} as candidate_time, id as candidate from ${table} where ${where.candidates})
       ${select}
         from (select * from candidates order by candidate_time desc, candidate desc) as c
         cross join lateral (select * from ${table} where ${where.base} and id = c.candidate limit 1) as found
        where ${where.checks}
        order by c.candidate_time desc, c.candidate desc limit ${limit + 1}`,
      where.params,
    );
  });
  return keysetPage(rows, limit, map, (r) => [r.page_key, r.id]);
}

function decode<T>(cursor: string | undefined, schema: z.ZodType<T>): T | undefined {
  if (!cursor) return undefined;
  try {
    return schema.parse(JSON.parse(Buffer.from(cursor, "base64url").toString("utf8")));
  } catch {
    throw new ValidationError("cursor is not one this API returned.");
  }
}

/** A LIKE pattern matching `text` anywhere, with LIKE's own wildcards escaped. */
const anywhere = (text: string) => `%${text.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;

/**
 * `q`: a case-insensitive substring of one of the report's string values.
 * The search column holds those values as lowercased JSON text (migration
 * 013), so `q` lowercased and JSON-escaped the same way is in it wherever
 * it is in a value; the index over the project and that text (migration
 * 015) finds those candidates. The text's
 * escapes and its array's brackets, quotes and commas can match too (`n`
 * in an escaped newline, `", "` between two values), so each candidate's
 * values are then checked themselves.
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

/**
 * Collects WHERE conditions and their parameters, numbering placeholders:
 * the base (the project, then the cursor and the like) apart from the
 * filters a query adds, and apart from checks, which no index serves and
 * which are put only to rows already in page order.
 */
class Where {
  readonly params: unknown[] = [];
  /** The project's placeholder. */
  readonly project: string;
  private readonly baseParts: string[];
  private readonly filterParts: string[] = [];
  private readonly checkParts: string[] = [];
  private projectInFilters = false;
  constructor(projectId: string) {
    this.project = `$${this.params.push(projectId)}`;
    this.baseParts = [`project_id = ${this.project}`];
  }
  private push(parts: string[], sql: (p: (value: unknown) => string) => string): this {
    parts.push(sql((value) => `$${this.params.push(value)}`));
    return this;
  }
  add(sql: (p: (value: unknown) => string) => string): this {
    return this.push(this.baseParts, sql);
  }
  filter(sql: (p: (value: unknown) => string) => string): this {
    return this.push(this.filterParts, sql);
  }
  /**
   * A filter that names the project itself, in a form only its own index
   * serves: finding candidates, the base's `project_id = …` is then left
   * out, so the planner cannot read the whole project from a btree instead.
   */
  filterWithProject(sql: (p: (value: unknown) => string) => string): this {
    this.projectInFilters = true;
    return this.filter(sql);
  }
  check(sql: (p: (value: unknown) => string) => string): this {
    return this.push(this.checkParts, sql);
  }
  get base(): string {
    return this.baseParts.join(" and ");
  }
  /** What a candidate must match: the base and the filters, the project stated once. */
  get candidates(): string {
    const base = this.projectInFilters ? this.baseParts.slice(1) : this.baseParts;
    return [...base, ...this.filterParts].join(" and ");
  }
  /** The filters, or the empty string when there are none. */
  get filters(): string {
    return this.filterParts.join(" and ");
  }
  /** The checks, or `true` when there are none. */
  get checks(): string {
    return this.checkParts.join(" and ") || "true";
  }
  get sql(): string {
    return [...this.baseParts, ...this.filterParts, ...this.checkParts].join(" and ");
  }
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
}

const AUDIT_COLUMNS =
  "seq, change_id, report_id, actor_type, actor_id, op, hlc, outcome, code, fields_applied, fields_superseded, before, after, received_at, applied_at, prev_hash, hash, sig, message";

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
  const [row] = await db.query<{
    last_applied_at: Date | null;
    reports: number;
    conflicts: number;
    devices: number;
  }>(
    `select (select applied_at from audit_log where project_id = $1 order by seq desc limit 1) as last_applied_at,
            (select count(*)::int from reports where project_id = $1 and deleted_hlc is null) as reports,
            (select count(*)::int from conflicts where project_id = $1) as conflicts,
            (select count(*)::int from devices where project_id = $1 and revoked_at is null) as devices`,
    [projectId],
  );
  return {
    lastAppliedAt: iso(row!.last_applied_at),
    reports: row!.reports,
    conflicts: row!.conflicts,
    devices: row!.devices,
  };
}
