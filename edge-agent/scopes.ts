import type { ReportRow } from "./rows.ts";
import { EdgeAgentError } from "./types.ts";

/*
 * The agent's side of scopes (DESIGN.md, "Scopes"): a write the cloud would
 * refuse for its scope is refused here, before anything is stored.
 * `scopes` is the device's, as the cloud last said; none: the whole project.
 */

/**
 * The scope of a new report: the one asked for, else the device's only
 * scope. A device with scopes creates reports only in them.
 */
export function scopeForNew(scopes: string[], asked: string | undefined): { scope?: string } {
  const scope = asked ?? (scopes.length === 1 ? scopes[0] : undefined);
  if (scopes.length === 0) return scope === undefined ? {} : { scope };
  if (scope === undefined) {
    throw new EdgeAgentError(
      "scope_forbidden",
      `This device syncs scopes ${scopes.join(", ")}: say which the report belongs to (--scope).`,
    );
  }
  if (!scopes.includes(scope)) {
    throw new EdgeAgentError(
      "scope_forbidden",
      `Scope ${scope} is not one of this device's scopes (${scopes.join(", ")}).`,
    );
  }
  return { scope };
}

/** The scope an edit of a stored report carries; refused when it left this device's scopes. */
export function scopeOfStored(scopes: string[], row: ReportRow): { scope?: string } {
  const inScope = scopes.length === 0 || (row.scope !== null && scopes.includes(row.scope));
  if (row.evicted || !inScope) {
    throw new EdgeAgentError(
      "scope_forbidden",
      `Report ${row.id} is outside this device's scopes (${scopes.join(", ")}).`,
    );
  }
  return row.scope === null ? {} : { scope: row.scope };
}
