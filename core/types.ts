export type Role = "device" | "analyst" | "auditor" | "admin" | "operator";
export const ROLES: readonly Role[] = ["device", "analyst", "auditor", "admin", "operator"];

/** Who a verified token speaks for. `project` is null only for the platform operator. */
export interface Principal {
  sub: string;
  project: string | null;
  role: Role;
}

export type { Ack, AuditEntry, Conflict, Report, SyncPage } from "./wire.ts";
