import type { JsonObject, JsonValue } from "../../core/json.ts";
import type { Conflict, Report } from "../../core/types.ts";

/*
 * Reports and conflicts as their tables hold them, and as the API sends
 * them: the columns every query of them selects, and the mapping.
 */

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
  erased: string[];
  scope: string | null;
}

const REPORT_COLUMN_NAMES = [
  "id",
  "fields",
  "clocks",
  "deleted_hlc",
  "version",
  "created_at",
  "updated_at",
  "created_by",
  "updated_by",
  "erased",
  "scope",
];
export const REPORT_COLUMNS = REPORT_COLUMN_NAMES.join(", ");
export const reportColumnsOf = (table: string) =>
  REPORT_COLUMN_NAMES.map((c) => `${table}.${c}`).join(", ");

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
    ...(row.erased?.length ? { erased: row.erased } : {}),
    ...(row.scope !== null && row.scope !== undefined ? { scope: row.scope } : {}),
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
  winner_erased: boolean;
  loser_erased: boolean;
}

export const CONFLICT_COLUMNS =
  "id, report_id, field, detected_at, winner_change_id, winner_device_id, winner_hlc, winner_value, loser_change_id, loser_device_id, loser_hlc, loser_value, winner_erased, loser_erased";

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
      ...(row.winner_erased ? { erased: true as const } : {}),
    },
    loser: {
      changeId: row.loser_change_id,
      deviceId: row.loser_device_id,
      hlc: row.loser_hlc,
      value: row.loser_value ?? null,
      ...(row.loser_erased ? { erased: true as const } : {}),
    },
  };
}
