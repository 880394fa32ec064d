import * as z from "zod";
import { ValidationError } from "../../core/errors.ts";
import type { Outcome } from "../../core/merge.ts";
import type { Ack, Conflict, Report } from "../../core/types.ts";
import { RETENTION_ACTOR } from "../../core/wire-custody.ts";
import type { Db } from "../adapters/db/db.ts";
import {
  backfillOf,
  backfillRows,
  type DeviceScopes,
  evictIds,
  evictionOf,
  outsideScopes,
  type Position,
  type Positioned,
  readDeviceScopes,
  reportRows,
  type Transition,
} from "./pull-scopes.ts";
import { CONFLICT_COLUMNS, type ConflictRow, toConflict, toReport } from "./rows.ts";

/**
 * Where a device's pull stands in each stream: rows strictly after
 * (xid, key). Rows carry the id of the transaction that wrote them; a page
 * only returns rows below the oldest transaction still running, so a
 * transaction committing late can never be skipped ("Pull cursor",
 * DESIGN.md).
 */
interface PullCursor {
  r: Position;
  a: [xid: string, seq: number];
  c: Position;
  /** Erasures; absent in cursors issued before they existed (from the start). */
  e: Position;
  /** The version of the device's scopes the reports stream is settled at (`pull-scopes.ts`). */
  m: number;
  /** Moving to another version of them. */
  t?: Transition;
}

// Report ids are never the nil UUID (ingest refuses it) and audit seq starts
// at 1, so these keys sort before every real row of the same xid.
const NIL_UUID = "00000000-0000-0000-0000-000000000000";
const START: PullCursor = {
  r: ["0", NIL_UUID],
  a: ["0", 0],
  c: ["0", NIL_UUID],
  e: ["0", NIL_UUID],
  m: 0,
};

const xidText = z.string().regex(/^\d{1,20}$/);
const CursorSchema = z.object({
  r: z.tuple([xidText, z.uuid()]),
  a: z.tuple([xidText, z.number().int().nonnegative()]),
  c: z.tuple([xidText, z.uuid()]),
  e: z.tuple([xidText, z.uuid()]).default(["0", NIL_UUID]),
  m: z.number().int().nonnegative().default(0),
  t: z
    .object({
      v: z.number().int().nonnegative(),
      b: z.tuple([xidText, z.uuid()]),
      to: z.tuple([xidText, z.uuid()]),
      x: z.uuid(),
    })
    .optional(),
});

export function encodeCursor(cursor: PullCursor): string {
  return Buffer.from(JSON.stringify(cursor)).toString("base64url");
}

export function decodeCursor(text: string | undefined): PullCursor {
  if (text === undefined || text === "") return START;
  try {
    return CursorSchema.parse(JSON.parse(Buffer.from(text, "base64url").toString("utf8")));
  } catch {
    throw new ValidationError("cursor is not one this API returned.");
  }
}

export interface PullRequest {
  projectId: string;
  deviceId: string;
  cursor: string | undefined;
  limit: number;
  /** The page's byte budget: `PAGE_BYTES` unless given. */
  pageBytes?: number;
}

export interface PulledErasure {
  id: string;
  reportId: string;
  fields: string[];
  requestedAt: string;
  /** `RETENTION_ACTOR` for retention's: the device erases the report's every value. */
  requestedBy: string;
}

export interface PullResult {
  reports: Report[];
  acks: Ack[];
  conflicts: Conflict[];
  erasures: PulledErasure[];
  /** Reports that left the device's scopes. */
  evict: string[];
  /** The device's scopes; none: the whole project. */
  scopes: string[];
  cursor: string;
  hasMore: boolean;
}

interface ErasureRow {
  id: string;
  report_id: string;
  fields: string[];
  requested_at: Date;
  requested_by: string;
}

/** The first agent version that erases what a pull asks it to. */
const ERASING_AGENT = "0,2,0";
/**
 * The first that also purges a report retention erased: every value it
 * holds of it, written before or after (edge-agent/local-removal.ts).
 */
const PURGING_AGENT = "0,4,0";

interface AckRow {
  change_id: string;
  report_id: string | null;
  outcome: Outcome;
  code: string | null;
  message: string | null;
  seq: number;
}

/**
 * The planner settings a pull runs under, set for its own transaction only.
 * Each stream's one right plan is an ordered range scan of its index on
 * (…, xid, key) that stops after `limit` rows. Without statistics (a new,
 * restored or bulk-loaded database) the planner may instead fetch every row
 * after the cursor and sort them, on every page, which makes a first sync
 * grow with the square of the project; these rule that out.
 */
export const ORDERED_INDEX_SCANS_ONLY =
  "set_config('enable_sort', 'off', true), set_config('enable_bitmapscan', 'off', true), set_config('enable_seqscan', 'off', true)";

/**
 * The most a page's items may take as JSON. A pull is answered through
 * Lambda, whose response may not exceed 6 MB, and the body is a JSON string
 * inside that response, where every quote and backslash of it is escaped
 * again: at worst twice its size. So a page stops adding rows at 2.5 MiB
 * (it always has one: a report is at most 64 fields of 32 KiB), and a
 * device pulls fewer than `limit` rows a page when they are large.
 */
export const PAGE_BYTES = 2.5 * 1024 * 1024;

/**
 * One page of a device's pull: its project's reports (those of its scopes,
 * if it has any, with what a change of its scopes adds and evicts:
 * `pull-scopes.ts`), its own changes' outcomes, the conflicts it took part
 * in and the erasures, each after the cursor and below the snapshot's xmin.
 * At most `limit` rows per stream.
 *
 * Every stream is ordered by the xid8 column itself. Its text form is
 * selected under another name (`cursor_xid`) because ORDER BY binds a bare
 * name to an output column first: text order ("10000" < "9998") would end a
 * page on the wrong row, and the numeric cursor would then skip the rest.
 */
export async function pull(
  db: Db,
  { projectId, deviceId, cursor, limit, pageBytes = PAGE_BYTES }: PullRequest,
): Promise<PullResult> {
  const from = decodeCursor(cursor);
  const read = await db.transaction(async (tx) => {
    const [{ xmin }] = (await tx.query<{ xmin: string }>(
      `select pg_snapshot_xmin(pg_current_snapshot())::text as xmin, ${ORDERED_INDEX_SCANS_ONLY}`,
    )) as [{ xmin: string }];
    const scopes = (await readDeviceScopes(tx, projectId, deviceId, from.m)) ?? WHOLE_PROJECT;
    const { settled, transition } = transitionOf(from, scopes);
    const range = { projectId, xmin, limit: limit + 1 };
    const reports = await reportRows(tx, scopes.current, { ...range, after: from.r });
    const backfill = transition ? backfillOf(scopes) : undefined;
    const backfilled =
      transition && backfill
        ? await backfillRows(tx, backfill, { ...range, after: transition.b, upTo: transition.to })
        : [];
    const eviction = transition ? evictionOf(scopes) : undefined;
    const evicted =
      transition && eviction && eviction.kind !== "none"
        ? await evictIds(tx, projectId, eviction, transition.x, limit + 1)
        : [];
    const acks = await tx.query<Positioned<AckRow>>(
      `select change_id, report_id, outcome, code, message, seq, xid::text as cursor_xid from audit_log
        where actor_id = $1 and project_id = $2 and (xid, seq) > ($3::text::xid8, $4::bigint) and xid < $5::text::xid8
        order by xid, seq limit $6`,
      [deviceId, projectId, from.a[0], from.a[1], xmin, limit + 1],
    );
    // A change this device made before one of its scopes was removed may be
    // applied after that scope's eviction was sent: its report goes too.
    const leftBehind = scopes.current
      ? await outsideScopes(tx, projectId, scopes.current, [
          ...new Set(acks.slice(0, limit).flatMap((a) => (a.report_id ? [a.report_id] : []))),
        ])
      : [];
    // A conflict names two different devices, so the device's conflicts are
    // two disjoint index ranges, read apart and merged below.
    const conflictsAs = (side: "winner" | "loser") =>
      tx.query<Positioned<ConflictRow>>(
        `select ${CONFLICT_COLUMNS}, xid::text as cursor_xid from conflicts
          where ${side}_device_id = $2::text and project_id = $1
            and (xid, id) > ($3::text::xid8, $4::uuid) and xid < $5::text::xid8
          order by xid, id limit $6`,
        [projectId, deviceId, from.c[0], from.c[1], xmin, limit + 1],
      );
    const won = await conflictsAs("winner");
    const lost = await conflictsAs("loser");
    const conflicts = [...won, ...lost].sort(byXidThenId).slice(0, limit + 1);
    // The device stored every page before this cursor, each with its cursor
    // in one transaction: an agent that knows erasures (0.2.0 on) has erased
    // what the erasures in them asked (DESIGN.md, "Erasure"), and one from
    // 0.4.0 has purged what retention erased. An older one moves on without
    // doing so, so it is never counted done.
    if (from.e[0] !== "0") {
      await tx.query(
        `insert into erasure_acks (erasure_id, device_id)
         select id, $2 from erasures
          where project_id = $1 and (xid, id) <= ($3::text::xid8, $4::uuid)
            and not exists (select 1 from erasure_acks a where a.erasure_id = erasures.id and a.device_id = $2)
            and exists (select 1 from devices d where d.id = $2
                          and (regexp_match(d.agent_version, '^([0-9]+)[.]([0-9]+)[.]([0-9]+)'))::int[]
                              >= case when erasures.requested_by = $5::uuid then '{${PURGING_AGENT}}'::int[]
                                      else '{${ERASING_AGENT}}'::int[] end)
         on conflict do nothing`,
        [projectId, deviceId, from.e[0], from.e[1], RETENTION_ACTOR],
      );
    }
    // A device with scopes is told only of erasures in reports of its
    // scopes, or that it wrote to (its outbox may hold their values after a
    // scope was taken away): a report's id and field names are the
    // project's to see, not every device's.
    const erasures = await tx.query<Positioned<ErasureRow>>(
      `select id, report_id, fields, requested_at, requested_by, xid::text as cursor_xid from erasures e
        where project_id = $1 and (xid, id) > ($2::text::xid8, $3::uuid) and xid < $4::text::xid8
          and ($6::text[] is null
               or exists (select 1 from reports r where r.id = e.report_id and r.project_id = e.project_id
                             and r.scope = any($6::text[]))
               or exists (select 1 from audit_log a where a.project_id = e.project_id
                             and a.report_id = e.report_id and a.actor_id = $7::uuid))
        order by xid, id limit $5`,
      [projectId, from.e[0], from.e[1], xmin, limit + 1, scopes.current, deviceId],
    );
    return {
      xmin,
      scopes,
      settled,
      transition,
      reports,
      backfilled,
      evicted,
      leftBehind,
      acks,
      conflicts,
      erasures,
    };
  });
  const { xmin, scopes, transition, reports, backfilled, evicted, acks, conflicts, erasures } =
    read;

  // Each stream's rows as sent, kept in order while the page stays within
  // its byte budget (the first row always: a single report fits).
  let budget = pageBytes;
  const within = <R, T>(rows: R[], toItem: (row: R) => T): T[] => {
    const items: T[] = [];
    for (const row of rows.slice(0, limit)) {
      const item = toItem(row);
      const bytes = Buffer.byteLength(JSON.stringify(item));
      if (bytes > budget && budget < pageBytes) break;
      budget -= bytes;
      items.push(item);
    }
    return items;
  };
  const sentReports = within(reports, toReport);
  const sentBackfill = within(backfilled, toReport);
  const sentAcks = within(acks, toAck);
  const sentConflicts = within(conflicts, toConflict);
  const sentErasures = within(erasures, toErasure);
  const sentEvictions = within(evicted, (id) => id);
  const evict = [...new Set([...sentEvictions, ...read.leftBehind])];

  // A stream with rows left continues after the last row sent (or where it
  // was, if none was); an exhausted one from xmin.
  const nextOf = <R extends { cursor_xid: string }, K>(
    rows: R[],
    sent: number,
    key: (row: R) => K,
    at: [string, K],
    exhausted: [string, K],
  ): { position: [string, K]; more: boolean } => {
    if (rows.length <= sent) return { position: exhausted, more: false };
    if (sent === 0) return { position: at, more: true };
    const last = rows[sent - 1]!;
    return { position: [last.cursor_xid, key(last)], more: true };
  };
  const r = nextOf(reports, sentReports.length, (row) => row.id, from.r, [xmin, NIL_UUID]);
  const a = nextOf(acks, sentAcks.length, (row) => row.seq, from.a, [xmin, 0]);
  const c = nextOf(conflicts, sentConflicts.length, (row) => row.id, from.c, [xmin, NIL_UUID]);
  const e = nextOf(erasures, sentErasures.length, (row) => row.id, from.e, [xmin, NIL_UUID]);
  // A transition is done when its backfill and eviction are: the cursor
  // then settles at the version it moved to.
  let m = read.settled;
  let t: Transition | undefined;
  let moving = false;
  if (transition) {
    const b = nextOf(backfilled, sentBackfill.length, (row) => row.id, transition.b, transition.to);
    const evictMore = evicted.length > sentEvictions.length;
    const x = sentEvictions.at(-1) ?? transition.x;
    if (b.more || evictMore) {
      t = { ...transition, b: b.position, x };
      moving = true;
    } else m = transition.v;
  }
  return {
    reports: [...sentReports, ...sentBackfill],
    acks: sentAcks,
    conflicts: sentConflicts,
    erasures: sentErasures,
    evict,
    scopes: [...(scopes.current ?? [])],
    cursor: encodeCursor({
      r: r.position,
      a: a.position,
      c: c.position,
      e: e.position,
      m,
      ...(t ? { t } : {}),
    }),
    hasMore: r.more || a.more || c.more || e.more || moving,
  };
}

/** A device the database does not hold (never: its token names it) syncs the whole project. */
const WHOLE_PROJECT: DeviceScopes = { version: 0, current: null, settled: null, since: [null] };

/**
 * Where the cursor's reports stream goes from here: settled where it is, or
 * moving (on) to the device's current scopes (`pull-scopes.ts`).
 */
function transitionOf(
  from: PullCursor,
  scopes: DeviceScopes,
): { settled: number; transition: Transition | undefined } {
  if (from.t?.v === scopes.version) return { settled: from.m, transition: from.t };
  if (!from.t && from.m === scopes.version) return { settled: from.m, transition: undefined };
  // A device that has received no report yet holds nothing to move.
  if (!from.t && from.r[0] === START.r[0] && from.r[1] === START.r[1]) {
    return { settled: scopes.version, transition: undefined };
  }
  return {
    settled: from.m,
    transition: { v: scopes.version, b: START.r, to: from.r, x: NIL_UUID },
  };
}

function toErasure(row: ErasureRow): PulledErasure {
  return {
    id: row.id,
    reportId: row.report_id,
    fields: row.fields,
    requestedAt: row.requested_at.toISOString(),
    requestedBy: row.requested_by,
  };
}

function toAck(row: AckRow): Ack {
  return {
    changeId: row.change_id,
    outcome: row.outcome,
    ...(row.code ? { code: row.code, message: row.message ?? "" } : {}),
  };
}

/** PostgreSQL's order of (xid8, uuid): xids as numbers, uuids as their lowercase hex. */
function byXidThenId(a: Positioned<{ id: string }>, b: Positioned<{ id: string }>): number {
  const [xa, xb] = [BigInt(a.cursor_xid), BigInt(b.cursor_xid)];
  if (xa !== xb) return xa < xb ? -1 : 1;
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}
