import type { Queryable } from "../adapters/db/db.ts";
import { REPORT_COLUMNS, type ReportRow, reportColumnsOf } from "./rows.ts";

/**
 * Partial sync (DESIGN.md, "Scopes"): which reports a device's pull covers,
 * and what it is sent when its scopes change.
 *
 * A device's scopes are versioned (`device_scope_log`; version 0 is the
 * whole project). A pull cursor is settled at a version: the device holds
 * the reports of that version's scopes up to the cursor's position, and no
 * others. When the device's scopes are at another version, the cursor moves
 * to it through a transition, page by page:
 *
 * - the main stream follows the new scopes from where it was;
 * - a backfill delivers the added scopes' reports up to that position
 *   (`to`), which the main stream has passed (nothing the device holds is
 *   sent again);
 * - an eviction lists, by id, every report of a scope the device may hold
 *   and no longer has: any scope of the versions since the settled one.
 *
 * When both are done the cursor settles at the new version. Another change
 * meanwhile starts the transition again towards the newest version (what
 * was already sent of it may be sent again: harmless, merge is idempotent).
 * A cursor that never received a report settles at once.
 */

/** Where a stream stands: rows strictly after (xid, key) (`pull.ts`). */
export type Position = [xid: string, key: string];
/** Rows of one stream carry their xid as text too, for the next cursor. */
export type Positioned<R> = R & { cursor_xid: string };

/** A set of scopes; null is the whole project (a device without scopes). */
export type ScopeSet = readonly string[] | null;

export interface Transition {
  /** The version the cursor moves to. */
  v: number;
  /** Backfill: where it stands, and where it ends (the main stream's position when it began). */
  b: [xid: string, id: string];
  to: [xid: string, id: string];
  /** Eviction: the last id listed. */
  x: string;
}

export interface DeviceScopes {
  /** The current version and its scopes. */
  version: number;
  current: ScopeSet;
  /** The scopes at the cursor's settled version. */
  settled: ScopeSet;
  /** Every set from the settled version to the current one, both included. */
  since: ScopeSet[];
}

const asSet = (scopes: string[]): ScopeSet => (scopes.length ? scopes : null);

/**
 * The device's scopes now, at the cursor's settled version and at every
 * version between. Null when the project has no such device.
 */
export async function readDeviceScopes(
  tx: Queryable,
  projectId: string,
  deviceId: string,
  settledVersion: number,
): Promise<DeviceScopes | undefined> {
  const [row] = await tx.query<{ scopes: string[]; version: number; log: [number, string[]][] }>(
    `select d.scopes, d.scope_version as version,
            (select coalesce(json_agg(json_build_array(l.version, l.scopes) order by l.version), '[]')
               from device_scope_log l where l.device_id = d.id and l.version >= $3) as log
       from devices d where d.id = $1 and (d.project_id = $2) is true`,
    [deviceId, projectId, settledVersion],
  );
  if (!row) return undefined;
  const log = new Map(row.log.map(([version, scopes]) => [version, asSet(scopes)]));
  // Version 0 is the whole project; a version not in the log (never, but a
  // cursor is the device's word) counts as the whole project too.
  const at = (version: number): ScopeSet => log.get(version) ?? null;
  const since = [at(settledVersion), ...[...log.keys()].filter((v) => v > settledVersion).map(at)];
  return {
    version: row.version,
    current: asSet(row.scopes),
    settled: at(settledVersion),
    since,
  };
}

/**
 * Reports chosen by scope: none, those of `scopes`, or every report outside
 * them (`except`, scopes null included).
 */
export type ScopeSelection =
  | { kind: "none" }
  | { kind: "scopes"; scopes: readonly string[] }
  | { kind: "except"; scopes: readonly string[] };

/** What a transition backfills: the current scopes' reports outside the settled scopes. */
export function backfillOf({ settled, current }: DeviceScopes): ScopeSelection {
  if (settled === null) return { kind: "none" };
  if (current === null) return { kind: "except", scopes: settled };
  const added = current.filter((s) => !settled.includes(s));
  return added.length ? { kind: "scopes", scopes: added } : { kind: "none" };
}

/** What a transition evicts: reports of the scopes held since the settled version and not current. */
export function evictionOf({ since, current }: DeviceScopes): ScopeSelection {
  if (current === null) return { kind: "none" };
  if (since.some((set) => set === null)) return { kind: "except", scopes: current };
  const held = new Set(since.flatMap((set) => set ?? []));
  const removed = [...held].filter((s) => !current.includes(s)).sort();
  return removed.length ? { kind: "scopes", scopes: removed } : { kind: "none" };
}

/** The rows a stream of reports reads: key columns only, the rows are joined after. */
export interface ReportKeyRange {
  projectId: string;
  after: [xid: string, id: string];
  /** Rows at or below this position only (a backfill's end). */
  upTo?: [xid: string, id: string];
  xmin: string;
  limit: number;
}

/**
 * SQL for the ordered keys (xid, id) of reports in `scopes`, after a
 * position: one ordered index range per scope (`reports_scope_pull`),
 * merged. Each range stops after `limit` rows, so a page reads at most
 * `limit` index entries per scope, whatever the project holds.
 *
 * Parameters: $1 project, $2 scopes, $3/$4 after, $5 xmin, $6 limit, $7/$8 up to.
 */
export const SCOPED_KEYS_SQL = `select k.xid, k.id from unnest($2::text[]) as s(scope)
  cross join lateral (
    select r.xid, r.id from reports r
     where r.project_id = $1 and r.scope = s.scope
       and (r.xid, r.id) > ($3::text::xid8, $4::uuid) and r.xid < $5::text::xid8
       and (r.xid, r.id) <= ($7::text::xid8, $8::uuid)
     order by r.xid, r.id limit $6) as k
  order by k.xid, k.id limit $6`;

/** The largest position: a range with no end. */
export const NO_END: [string, string] = [
  "18446744073709551615",
  "ffffffff-ffff-ffff-ffff-ffffffffffff",
];

/**
 * Ids of reports to evict, after `after`, in id order: those of `scopes`,
 * or every report outside them (`except`).
 */
export async function evictIds(
  tx: Queryable,
  projectId: string,
  eviction: Exclude<ScopeSelection, { kind: "none" }>,
  after: string,
  limit: number,
): Promise<string[]> {
  const rows =
    eviction.kind === "scopes"
      ? await tx.query<{ id: string }>(
          `select k.id from unnest($2::text[]) as s(scope)
            cross join lateral (select r.id from reports r
                                 where r.project_id = $1 and r.scope = s.scope and r.id > $3::uuid) as k
            order by k.id limit $4`,
          [projectId, eviction.scopes, after, limit],
        )
      : await tx.query<{ id: string }>(
          `select id from reports
            where id > $3::uuid and project_id = $1 and (scope is null or not (scope = any($2::text[])))
            order by id limit $4`,
          [projectId, eviction.scopes, after, limit],
        );
  return rows.map((r) => r.id);
}

/**
 * Of the reports a page acknowledges this device's changes to, those
 * outside its scopes: a change it made before a scope was removed, applied
 * after that scope's eviction was sent. The device drops them once none of
 * its changes to them is unacknowledged.
 */
export async function outsideScopes(
  tx: Queryable,
  projectId: string,
  scopes: readonly string[],
  reportIds: string[],
): Promise<string[]> {
  if (reportIds.length === 0) return [];
  const rows = await tx.query<{ id: string }>(
    `select id from reports
      where id = any($2::uuid[]) and (project_id = $1) is true
        and (scope is null or not (scope = any($3::text[])))`,
    [projectId, reportIds, scopes],
  );
  return rows.map((r) => r.id);
}

export interface RowRange {
  projectId: string;
  after: Position;
  upTo?: Position;
  xmin: string;
  /** Rows to read: one more than a page sends, to know whether more remain. */
  limit: number;
}

/** The reports stream: the project's reports, or those of the device's scopes. */
export function reportRows(
  tx: Queryable,
  scopes: readonly string[] | null,
  range: RowRange,
): Promise<Positioned<ReportRow>[]> {
  return scopes === null ? projectRows(tx, range) : scopedRows(tx, scopes, range);
}

/** A transition's backfill: the added scopes' reports up to where the reports stream was. */
export function backfillRows(
  tx: Queryable,
  backfill: ScopeSelection,
  range: RowRange,
): Promise<Positioned<ReportRow>[]> | [] {
  if (backfill.kind === "none") return [];
  if (backfill.kind === "scopes") return scopedRows(tx, backfill.scopes, range);
  return projectRows(tx, range, backfill.scopes);
}

/** The project's reports in (xid, id) order, outside `except` scopes when given. */
function projectRows(
  tx: Queryable,
  { projectId, after, upTo, xmin, limit }: RowRange,
  except?: readonly string[],
): Promise<Positioned<ReportRow>[]> {
  const bounded = upTo
    ? "and (xid, id) <= ($6::text::xid8, $7::uuid) and (scope is null or not (scope = any($8::text[])))"
    : "";
  return tx.query<Positioned<ReportRow>>(
    `select ${REPORT_COLUMNS}, xid::text as cursor_xid from reports
      where project_id = $1 and (xid, id) > ($2::text::xid8, $3::uuid) and xid < $4::text::xid8 ${bounded}
      order by xid, id limit $5`,
    [projectId, after[0], after[1], xmin, limit, ...(upTo ? [upTo[0], upTo[1], except ?? []] : [])],
  );
}

/**
 * The reports of scopes in (xid, id) order: their keys from one index range
 * each, then the rows, each by primary key (`(a = b) is true` is no index
 * condition, so no index led by the project can be taken instead, which
 * would read the project's rows once per key). Parameters as
 * `SCOPED_KEYS_SQL`'s.
 */
export const SCOPED_ROWS_SQL = `with keys as (${SCOPED_KEYS_SQL})
  select ${reportColumnsOf("r")}, r.xid::text as cursor_xid
    from keys join reports r on r.id = keys.id and (r.project_id = $1) is true
   order by keys.xid, keys.id`;

export const scopedRowsParams = (
  scopes: readonly string[],
  { projectId, after, upTo = NO_END, xmin, limit }: RowRange,
) => [projectId, scopes, after[0], after[1], xmin, limit, upTo[0], upTo[1]];

function scopedRows(
  tx: Queryable,
  scopes: readonly string[],
  range: RowRange,
): Promise<Positioned<ReportRow>[]> {
  return tx.query<Positioned<ReportRow>>(SCOPED_ROWS_SQL, scopedRowsParams(scopes, range));
}
