import type { Change } from "../core/change.ts";
import type { JsonObject } from "../core/json.ts";
import { emptyReportState, type ReportState } from "../core/merge.ts";
import type { Report } from "../core/wire.ts";
import type { OutboxState } from "./types.ts";

/* The agent's rows as SQLite holds them, and what they stand for. */

export interface ReportRow {
  id: string;
  fields: string;
  clocks: string;
  deleted_hlc: string | null;
  version: number;
  created_at: string;
  updated_at: string;
  created_by: string | null;
  updated_by: string | null;
  /** The last state pulled from the cloud, null until the first pull. */
  server: string | null;
  scope: string | null;
  /** 1: it left this device's scopes; dropped once its changes are acknowledged. */
  evicted: number;
}

/** A change in the outbox, as stored. */
export interface OutboxEntry {
  seq: number;
  change_id: string;
  report_id: string;
  op: "upsert" | "delete";
  hlc: string;
  fields: string | null;
  base: string | null;
  sig: string | null;
  scope: string | null;
  state: OutboxState;
}

export function toChange(entry: OutboxEntry): Change {
  const sig = entry.sig ? { sig: entry.sig } : {};
  const scope = entry.scope !== null && entry.scope !== undefined ? { scope: entry.scope } : {};
  return entry.op === "upsert"
    ? {
        changeId: entry.change_id,
        reportId: entry.report_id,
        op: "upsert",
        hlc: entry.hlc,
        fields: JSON.parse(entry.fields ?? "{}") as JsonObject,
        base: JSON.parse(entry.base ?? "{}") as Record<string, string | null>,
        ...scope,
        ...sig,
      }
    : {
        changeId: entry.change_id,
        reportId: entry.report_id,
        op: "delete",
        hlc: entry.hlc,
        ...scope,
        ...sig,
      };
}

export function toReport(row: ReportRow): Report {
  return {
    id: row.id,
    fields: JSON.parse(row.fields) as JsonObject,
    clocks: JSON.parse(row.clocks) as Record<string, string>,
    deleted: row.deleted_hlc !== null,
    version: row.version,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    createdBy: row.created_by,
    updatedBy: row.updated_by,
    ...(row.scope !== null && row.scope !== undefined ? { scope: row.scope } : {}),
  };
}

export function stateOf(row: ReportRow | undefined): ReportState {
  if (!row) return emptyReportState();
  return {
    fields: JSON.parse(row.fields) as JsonObject,
    clocks: JSON.parse(row.clocks) as Record<string, string>,
    writers: {},
    deletedHlc: row.deleted_hlc,
  };
}

/** The server's view of a report as merge state (writers are the server's business). */
export function serverState(report: Report): ReportState {
  return {
    fields: report.fields,
    clocks: report.clocks,
    writers: {},
    deletedHlc: report.deleted ? "" : null,
  };
}
