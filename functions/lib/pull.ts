import { z } from "zod";
import { ValidationError } from "../../core/errors.ts";
import type { JsonObject, JsonValue } from "../../core/json.ts";
import type { Outcome } from "../../core/merge.ts";
import type { Ack, Conflict, Report } from "../../core/types.ts";
import type { Queryable } from "./db/db.ts";

/**
 * Where a device's pull stands in each stream: rows strictly after
 * (xid, key). Rows carry the id of the transaction that wrote them; a page
 * only returns rows below the oldest transaction still running, so a
 * transaction committing late can never be skipped ("Pull cursor",
 * DESIGN.md).
 */
type Position = [xid: string, key: string];
interface PullCursor {
  r: Position;
  a: [xid: string, seq: number];
  c: Position;
}

// Report ids are never the nil UUID (ingest refuses it) and audit seq starts
// at 1, so these keys sort before every real row of the same xid.
const NIL_UUID = "00000000-0000-0000-0000-000000000000";
const START: PullCursor = { r: ["0", NIL_UUID], a: ["0", 0], c: ["0", NIL_UUID] };

const xidText = z.string().regex(/^\d{1,20}$/);
const CursorSchema = z.object({
  r: z.tuple([xidText, z.uuid()]),
  a: z.tuple([xidText, z.number().int().nonnegative()]),
  c: z.tuple([xidText, z.uuid()]),
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

export interface ReportRow {
  id: string;
  fields: JsonObject;
  clocks: Record<string, string>;
  deleted_hlc: string | null;
  version: number;
  created_at: Date;
  updated_at: Date;
  created_by: string | null;
  updated_by: string | null;
}

export const REPORT_COLUMNS =
  "id, fields, clocks, deleted_hlc, version, created_at, updated_at, created_by, updated_by";

export function toReport(row: ReportRow): Report {
  return {
    id: row.id,
    fields: row.fields,
    clocks: row.clocks,
    deleted: row.deleted_hlc !== null,
    version: row.version,
    createdAt: row.created_at.toISOString(),
    updatedAt: row.updated_at.toISOString(),
    createdBy: row.created_by,
    updatedBy: row.updated_by,
  };
}

export interface ConflictRow {
  id: string;
  report_id: string;
  field: string;
  detected_at: Date;
  winner_change_id: string;
  winner_device_id: string;
  winner_hlc: string;
  winner_value: JsonValue;
  loser_change_id: string;
  loser_device_id: string;
  loser_hlc: string;
  loser_value: JsonValue;
}

export const CONFLICT_COLUMNS =
  "id, report_id, field, detected_at, winner_change_id, winner_device_id, winner_hlc, winner_value, loser_change_id, loser_device_id, loser_hlc, loser_value";

export function toConflict(row: ConflictRow): Conflict {
  return {
    id: row.id,
    reportId: row.report_id,
    field: row.field,
    detectedAt: row.detected_at.toISOString(),
    winner: {
      changeId: row.winner_change_id,
      deviceId: row.winner_device_id,
      hlc: row.winner_hlc,
      value: row.winner_value ?? null,
    },
    loser: {
      changeId: row.loser_change_id,
      deviceId: row.loser_device_id,
      hlc: row.loser_hlc,
      value: row.loser_value ?? null,
    },
  };
}

export interface PullRequest {
  projectId: string;
  deviceId: string;
  cursor: string | undefined;
  limit: number;
}

export interface PullResult {
  reports: Report[];
  acks: Ack[];
  conflicts: Conflict[];
  cursor: string;
  hasMore: boolean;
}

/**
 * One page of a device's pull: its project's reports, its own changes'
 * outcomes and the conflicts it took part in, each after the cursor and below
 * the snapshot's xmin. At most `limit` rows per stream.
 */
export async function pull(
  db: Queryable,
  { projectId, deviceId, cursor, limit }: PullRequest,
): Promise<PullResult> {
  const from = decodeCursor(cursor);
  const [{ xmin }] = (await db.query<{ xmin: string }>(
    "select pg_snapshot_xmin(pg_current_snapshot())::text as xmin",
  )) as [{ xmin: string }];

  const [reportRows, ackRows, conflictRows] = [
    await db.query<ReportRow & { xid: string }>(
      `select ${REPORT_COLUMNS}, xid::text as xid from reports
        where project_id = $1 and (xid, id) > ($2::text::xid8, $3::uuid) and xid < $4::text::xid8
        order by xid, id limit $5`,
      [projectId, from.r[0], from.r[1], xmin, limit + 1],
    ),
    await db.query<{
      change_id: string;
      outcome: Outcome;
      code: string | null;
      message: string | null;
      xid: string;
      seq: number;
    }>(
      `select change_id, outcome, code, message, xid::text as xid, seq from audit_log
        where actor_id = $1 and project_id = $2 and (xid, seq) > ($3::text::xid8, $4::bigint) and xid < $5::text::xid8
        order by xid, seq limit $6`,
      [deviceId, projectId, from.a[0], from.a[1], xmin, limit + 1],
    ),
    await db.query<ConflictRow & { xid: string }>(
      `select ${CONFLICT_COLUMNS}, xid::text as xid from conflicts
        where project_id = $1 and (winner_device_id = $2::text or loser_device_id = $2::text)
          and (xid, id) > ($3::text::xid8, $4::uuid) and xid < $5::text::xid8
        order by xid, id limit $6`,
      [projectId, deviceId, from.c[0], from.c[1], xmin, limit + 1],
    ),
  ];

  // A full stream continues after its last row; an exhausted one from xmin.
  const next: PullCursor = {
    r:
      reportRows.length > limit
        ? [reportRows[limit - 1]!.xid, reportRows[limit - 1]!.id]
        : [xmin, NIL_UUID],
    a: ackRows.length > limit ? [ackRows[limit - 1]!.xid, ackRows[limit - 1]!.seq] : [xmin, 0],
    c:
      conflictRows.length > limit
        ? [conflictRows[limit - 1]!.xid, conflictRows[limit - 1]!.id]
        : [xmin, NIL_UUID],
  };
  return {
    reports: reportRows.slice(0, limit).map(toReport),
    acks: ackRows.slice(0, limit).map((r) => ({
      changeId: r.change_id,
      outcome: r.outcome,
      ...(r.code ? { code: r.code, message: r.message ?? "" } : {}),
    })),
    conflicts: conflictRows.slice(0, limit).map(toConflict),
    cursor: encodeCursor(next),
    hasMore: reportRows.length > limit || ackRows.length > limit || conflictRows.length > limit,
  };
}
