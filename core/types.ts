import type { Op } from "./change.ts";
import type { JsonObject, JsonValue } from "./json.ts";
import type { Outcome } from "./merge.ts";

export type Role = "device" | "analyst" | "auditor" | "admin" | "operator";
export const ROLES: readonly Role[] = ["device", "analyst", "auditor", "admin", "operator"];

/** Who a verified token speaks for. `project` is null only for the platform operator. */
export interface Principal {
  sub: string;
  project: string | null;
  role: Role;
}

/** A report as the API returns it (CONTRACT.md "Report"). */
export interface Report {
  id: string;
  fields: JsonObject;
  clocks: Record<string, string>;
  deleted: boolean;
  version: number;
  createdAt: string;
  updatedAt: string;
  createdBy: string | null;
  updatedBy: string | null;
}

export interface Ack {
  changeId: string;
  outcome: Outcome;
  code?: string;
  message?: string;
}

export interface ConflictSideView {
  changeId: string;
  deviceId: string;
  hlc: string;
  value: JsonValue;
}

export interface Conflict {
  id: string;
  reportId: string;
  field: string;
  detectedAt: string;
  winner: ConflictSideView;
  loser: ConflictSideView;
}

export interface SyncPage {
  reports: Report[];
  acks: Ack[];
  conflicts: Conflict[];
  cursor: string;
  hasMore: boolean;
  serverTime: number;
}

export interface AuditEntry {
  seq: number;
  changeId: string;
  reportId: string;
  actor: { type: "device" | "member"; id: string };
  op: Op;
  hlc: string;
  outcome: Outcome;
  fieldsApplied: string[];
  fieldsSuperseded: string[];
  before: JsonObject;
  after: JsonObject;
  receivedAt: string;
  appliedAt: string;
  prevHash: string | null;
  hash: string | null;
  code?: string;
}
