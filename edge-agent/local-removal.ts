import type { Change } from "../core/change.ts";
import { hlcWall } from "../core/hlc.ts";
import type { JsonObject } from "../core/json.ts";
import type { Conflict, Report } from "../core/wire.ts";
import { RETENTION_ACTOR } from "../core/wire-custody.ts";
import { type OutboxEntry, type ReportRow, toChange } from "./rows.ts";
import type { Statements } from "./statements.ts";

/**
 * What must leave this device's files: values a data-protection erasure
 * removed (DESIGN.md, "Erasure") and reports that left its scopes
 * ("Scopes"). Works on the tables of `OutboxStore`, inside its transactions.
 */
export class LocalRemoval {
  constructor(
    private readonly statements: Statements,
    private readonly report: (id: string) => ReportRow | undefined,
  ) {}

  private sql(text: string) {
    return this.statements.sql(text);
  }

  /**
   * Carries out a data-protection erasure here (call in one transaction):
   * the fields' values become null in the report's local view and cloud
   * copy, in every outbox entry written before the request (those still to
   * send are signed again by `resign`), and in the report's conflicts.
   * Retention's erasure (`RETENTION_ACTOR`) removes a deleted report for
   * good: every value of it, in every outbox entry whenever written, as the
   * cloud erases such a write when it arrives. With `secure_delete` on,
   * SQLite overwrites what it frees, so the values do not linger in the file.
   */
  erase(
    erasure: { reportId: string; fields: string[]; requestedAt: string; requestedBy?: string },
    resign: (change: Change) => Change,
  ): void {
    const purge = erasure.requestedBy === RETENTION_ACTOR;
    const fields = new Set(erasure.fields);
    const erases = (field: string) => purge || fields.has(field);
    const scrub = (values: JsonObject | null | undefined): boolean => {
      let touched = false;
      for (const f of Object.keys(values ?? {})) {
        if (erases(f) && values![f] !== null) {
          values![f] = null;
          touched = true;
        }
      }
      return touched;
    };
    const row = this.report(erasure.reportId);
    if (row) {
      const local = JSON.parse(row.fields) as JsonObject;
      const server = row.server ? (JSON.parse(row.server) as Report) : null;
      if (server) server.erased = [...new Set([...(server.erased ?? []), ...fields])].sort();
      scrub(local);
      scrub(server?.fields);
      this.sql("update reports set fields = ?, server = ? where id = ?").run(
        JSON.stringify(local),
        server ? JSON.stringify(server) : null,
        erasure.reportId,
      );
    }
    const before = Date.parse(erasure.requestedAt);
    const entries = this.sql(
      "select * from outbox where report_id = ? and op = 'upsert' order by seq",
    ).all(erasure.reportId) as OutboxEntry[];
    for (const entry of entries) {
      if (!purge && hlcWall(entry.hlc) > before) continue; // written after: a new value
      const change = toChange(entry);
      if (change.op !== "upsert" || !scrub(change.fields)) continue;
      const open = entry.state === "pending" || entry.state === "sent";
      const sig = open ? (resign(change).sig ?? null) : entry.sig;
      this.sql("update outbox set fields = ?, sig = ? where seq = ?").run(
        JSON.stringify(change.fields),
        sig,
        entry.seq,
      );
    }
    const conflicts = this.sql("select id, body from conflicts where report_id = ?").all(
      erasure.reportId,
    ) as { id: string; body: string }[];
    for (const { id, body } of conflicts) {
      const conflict = JSON.parse(body) as Conflict;
      if (!erases(conflict.field)) continue;
      conflict.winner.value = null;
      conflict.loser.value = null;
      this.sql("update conflicts set body = ? where id = ?").run(JSON.stringify(conflict), id);
    }
  }

  /**
   * Reports that left this device's scopes (call in one transaction): each
   * is dropped, with its conflicts, once none of this device's changes to
   * it is unacknowledged; until then it stays, marked, and `dropEvicted`
   * drops it when they are.
   */
  evict(reportIds: Iterable<string>): void {
    const mark = this.sql("update reports set evicted = 1 where id = ?");
    for (const id of reportIds) mark.run(id);
    this.dropEvicted();
  }

  /** Drops the evicted reports none of whose changes are unacknowledged. */
  dropEvicted(): void {
    const gone = this.sql(
      `delete from reports where evicted = 1 and not exists (
         select 1 from outbox o where o.report_id = reports.id and o.state in ('pending', 'sent'))
       returning id`,
    ).all() as { id: string }[];
    const conflicts = this.sql("delete from conflicts where report_id = ?");
    for (const { id } of gone) conflicts.run(id);
  }
}
