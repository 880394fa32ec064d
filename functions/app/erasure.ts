import { type AuditRecord, hashAuditRecord, valueDigest } from "../../core/audit.ts";
import { NotFoundError } from "../../core/errors.ts";
import type { JsonObject } from "../../core/json.ts";
import type { Erasure } from "../../core/wire.ts";
import type { Db, Queryable } from "../adapters/db/db.ts";

export interface ErasureRequest {
  reportId: string;
  /** The fields to erase; every field the report ever had when absent. */
  fields?: string[];
  reason: string;
}

interface ErasableRow {
  seq: number;
  before: JsonObject;
  after: JsonObject;
  signed_change: { fields: JsonObject | null } | null;
  erased_digests: Record<string, string>;
  fields_applied: string[];
  fields_superseded: string[];
}

/**
 * One audit row with `fields` erased: each value null, its digest kept in
 * `erased_digests` under "before:", "after:" or "signed:", so the hash and
 * the signature's check still hold. Undefined when the row holds none.
 */
export function erasedRow(row: ErasableRow, fields: ReadonlySet<string>) {
  const erased = { ...row.erased_digests };
  const sides = {
    before: { ...row.before },
    after: { ...row.after },
    signed: { ...(row.signed_change?.fields ?? {}) },
  };
  let touched = false;
  for (const [side, values] of Object.entries(sides)) {
    for (const field of Object.keys(values)) {
      if (!fields.has(field) || values[field] === null) continue;
      erased[`${side}:${field}`] ??= valueDigest(values[field]!);
      values[field] = null;
      touched = true;
    }
  }
  if (!touched) return undefined;
  return {
    before: sides.before,
    after: sides.after,
    signedChange: row.signed_change ? { ...row.signed_change, fields: sides.signed } : null,
    erasedDigests: erased,
  };
}

/**
 * A data-protection erasure (DESIGN.md, "Erasure"): in one transaction the
 * values of the report's `fields` become null in the report (clocks kept,
 * fields listed in `erased`), in every audit row of it (digests kept: the
 * chain and the signatures' checks still hold) and in its conflicts; the
 * erasure is recorded, and appended to the report's audit chain as an entry
 * of its own (who, when, why). Devices erase their copies when their next
 * pull delivers it.
 *
 * @throws NotFoundError when the project has no such report.
 */
export function eraseReport(
  db: Db,
  projectId: string,
  memberId: string,
  request: ErasureRequest,
  now: () => number,
): Promise<Erasure> {
  return db.transaction(async (tx) => {
    const [report] = await tx.query<{ fields: JsonObject }>(
      "select fields from reports where project_id = $1 and id = $2 for update",
      [projectId, request.reportId],
    );
    if (!report) throw new NotFoundError("No such report.");
    const rows = await tx.query<ErasableRow>(
      `select seq, before, after, signed_change, erased_digests, fields_applied, fields_superseded
         from audit_log where project_id = $1 and report_id = $2 order by seq`,
      [projectId, request.reportId],
    );
    const everField = new Set(Object.keys(report.fields));
    for (const row of rows)
      for (const f of [...row.fields_applied, ...row.fields_superseded]) everField.add(f);
    const fields = [...new Set(request.fields ?? everField)].sort();
    const erasing = new Set(fields);

    await tx.query(
      `update reports
          set fields = fields || (select coalesce(jsonb_object_agg(f, null), '{}') from unnest($3::text[]) f
                                   where fields ? f),
              erased = array(select distinct unnest(erased || $3::text[]) order by 1),
              updated_at = now(), xid = pg_current_xact_id()
        where project_id = $1 and id = $2`,
      [projectId, request.reportId, fields],
    );
    await tx.query("select set_config('edge_sync.audit_erasure', 'on', true)");
    for (const row of rows) {
      const erased = erasedRow(row, erasing);
      if (!erased) continue;
      await tx.query(
        `update audit_log set before = $2::jsonb, after = $3::jsonb, signed_change = $4::jsonb,
                erased_digests = $5::jsonb
          where seq = $1`,
        [
          row.seq,
          JSON.stringify(erased.before),
          JSON.stringify(erased.after),
          erased.signedChange === null ? null : JSON.stringify(erased.signedChange),
          JSON.stringify(erased.erasedDigests),
        ],
      );
    }
    await tx.query("select set_config('edge_sync.audit_erasure', 'off', true)");
    await tx.query(
      `update conflicts set winner_value = null, loser_value = null, xid = pg_current_xact_id()
        where project_id = $1 and report_id = $2 and field = any($3::text[])`,
      [projectId, request.reportId, fields],
    );

    const id = crypto.randomUUID();
    const at = new Date(now()).toISOString();
    await tx.query(
      `insert into erasures (id, project_id, report_id, fields, reason, requested_by, requested_at)
       values ($1, $2, $3, $4::text[], $5, $6, $7)`,
      [id, projectId, request.reportId, fields, request.reason, memberId, at],
    );
    await appendErasureEntry(tx, {
      projectId,
      changeId: id,
      reportId: request.reportId,
      actor: { type: "member", id: memberId },
      op: "erase",
      hlc: null,
      outcome: "applied",
      code: null,
      message: request.reason,
      fieldsApplied: fields,
      fieldsSuperseded: [],
      before: {},
      after: {},
      receivedAt: at,
      appliedAt: at,
      prevHash: null,
      sig: null,
      signedChange: null,
    });
    return erasureById(tx, projectId, id);
  });
}

/** Appends the erasure's own entry to the report's chain. */
async function appendErasureEntry(tx: Queryable, record: AuditRecord): Promise<void> {
  const [chain] = await tx.query<{ head: string }>(
    "select head from audit_chains where project_id = $1 and report_id = $2 for update",
    [record.projectId, record.reportId],
  );
  const entry = { ...record, prevHash: chain?.head ?? null };
  const hash = hashAuditRecord(entry);
  await tx.query(
    `insert into audit_log (project_id, change_id, report_id, actor_type, actor_id, op, hlc, outcome,
            message, fields_applied, received_at, applied_at, prev_hash, hash)
     values ($1, $2, $3, 'member', $4, 'erase', null, 'applied', $5, $6::text[], $7, $7, $8, $9)`,
    [
      entry.projectId,
      entry.changeId,
      entry.reportId,
      entry.actor.id,
      entry.message,
      entry.fieldsApplied,
      entry.receivedAt,
      entry.prevHash,
      hash,
    ],
  );
  await tx.query(
    `insert into audit_chains (project_id, report_id, head) values ($1, $2, $3)
     on conflict (project_id, report_id) do update set head = excluded.head`,
    [entry.projectId, entry.reportId, hash],
  );
}

/** An erasure with how many of the project's devices have yet to erase their copies. */
export async function erasureById(db: Queryable, projectId: string, id: string): Promise<Erasure> {
  const [row] = await db.query<{
    id: string;
    report_id: string;
    fields: string[];
    reason: string;
    requested_by: string;
    requested_at: Date;
    pending: number;
    done: number;
  }>(
    `select e.id, e.report_id, e.fields, e.reason, e.requested_by, e.requested_at,
            (select count(*)::int from devices d
              where d.project_id = e.project_id and d.revoked_at is null and d.created_at <= e.requested_at
                and not exists (select 1 from erasure_acks a where a.erasure_id = e.id and a.device_id = d.id)) as pending,
            (select count(*)::int from erasure_acks a where a.erasure_id = e.id) as done
       from erasures e where e.project_id = $1 and e.id = $2`,
    [projectId, id],
  );
  if (!row) throw new NotFoundError("No such erasure.");
  return {
    id: row.id,
    reportId: row.report_id,
    fields: row.fields,
    reason: row.reason,
    requestedBy: row.requested_by,
    requestedAt: row.requested_at.toISOString(),
    devicesPending: row.pending,
    devicesDone: row.done,
  };
}
