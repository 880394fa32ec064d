import {
  type AuditRecord,
  hashAuditRecord,
  saltLabel,
  saltOf,
  valueDigest,
} from "../../core/audit.ts";
import { EdgeSyncError, NotFoundError } from "../../core/errors.ts";
import type { JsonObject } from "../../core/json.ts";
import { type Erasure, RETENTION_ACTOR } from "../../core/wire-custody.ts";
import type { Db, Queryable } from "../adapters/db/db.ts";
import { chainHeadOf } from "./audit.ts";

/** The report is under legal hold: nothing of it may be erased. */
export class LegalHoldError extends EdgeSyncError {
  override name = "LegalHoldError";
  constructor(reason: string) {
    super("legal_hold", `This report is under legal hold (${reason}); lift the hold first.`, 409);
  }
}

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
  seed: string | null;
  salts: Record<string, string>;
  fields_applied: string[];
  fields_superseded: string[];
}

/**
 * One audit row with `fields` erased: each value null, its digest kept in
 * `erased_digests` under "before:", "after:" or "signed:", so the hash and
 * the signature's check still hold; the row's seed replaced by the salts of
 * the values it keeps, so no erased value's salt can be derived again and
 * its digest says nothing of it (core/audit.ts, `ValueSalts`). Undefined
 * when the row holds none.
 */
export function erasedRow(
  row: Pick<
    ErasableRow,
    "before" | "after" | "signed_change" | "erased_digests" | "seed" | "salts"
  >,
  fields: ReadonlySet<string>,
) {
  const source = { seed: row.seed, salts: row.salts };
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
      erased[`${side}:${field}`] ??= valueDigest(
        values[field]!,
        saltOf(source, saltLabel(side as "before" | "after" | "signed", field)),
      );
      values[field] = null;
      touched = true;
    }
  }
  if (!touched) return undefined;
  // The salts of every value not erased; none of an erased one.
  const salts: Record<string, string> = {};
  for (const [side, values] of Object.entries(sides)) {
    for (const field of Object.keys(values)) {
      const label = saltLabel(side as "before" | "after" | "signed", field);
      const gone =
        label === `before:${field}`
          ? erased[label] !== undefined
          : erased[label] !== undefined || erased[`signed:${field}`] !== undefined;
      const salt = gone ? undefined : saltOf(source, label);
      if (salt !== undefined) salts[label] = salt;
    }
  }
  return {
    seed: null,
    salts,
    before: sides.before,
    after: sides.after,
    // A delete signed no fields (null): it stays so.
    signedChange: row.signed_change
      ? { ...row.signed_change, fields: row.signed_change.fields && sides.signed }
      : null,
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
 * @throws LegalHoldError when the report is under legal hold.
 */
export function eraseReport(
  db: Db,
  projectId: string,
  memberId: string,
  request: ErasureRequest,
  now: () => number,
): Promise<Erasure> {
  return db.transaction(async (tx) => {
    const [report] = await tx.query<{ fields: JsonObject; hold_reason: string | null }>(
      "select fields, hold_reason from reports where project_id = $1 and id = $2 for update",
      [projectId, request.reportId],
    );
    if (!report) throw new NotFoundError("No such report.");
    if (report.hold_reason !== null) throw new LegalHoldError(report.hold_reason);
    const rows = await tx.query<ErasableRow>(
      `select seq, before, after, signed_change, erased_digests, seed, salts, fields_applied, fields_superseded
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
                erased_digests = $5::jsonb, seed = null, salts = $7::jsonb
          where project_id = $6 and seq = $1`,
        [
          row.seq,
          JSON.stringify(erased.before),
          JSON.stringify(erased.after),
          erased.signedChange === null ? null : JSON.stringify(erased.signedChange),
          JSON.stringify(erased.erasedDigests),
          projectId,
          JSON.stringify(erased.salts),
        ],
      );
    }
    await tx.query("select set_config('edge_sync.audit_erasure', 'off', true)");
    await tx.query(
      `update conflicts set winner_value = null, loser_value = null, xid = pg_current_xact_id(),
              winner_erased = winner_erased or winner_value is not null,
              loser_erased = loser_erased or loser_value is not null
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

/** Appends the erasure's own entry to the chain of the report (stored, and locked by the caller). */
async function appendErasureEntry(
  tx: Queryable,
  record: AuditRecord & { reportId: string },
): Promise<void> {
  const entry = {
    ...record,
    prevHash: await chainHeadOf(tx, record.projectId, record.reportId),
  };
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
  // A head found in audit_chains (a report stored before migration 014
  // without one) moves on there too, as the apply path's does.
  await tx.query(
    `with moved as (update reports set chain_head = $3 where project_id = $1 and id = $2)
     update audit_chains set head = $3 where project_id = $1 and report_id = $2`,
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

/** Puts a report under legal hold, or changes the hold's reason. */
export async function holdReport(
  db: Queryable,
  projectId: string,
  reportId: string,
  memberId: string,
  reason: string,
): Promise<{ reportId: string; reason: string; heldBy: string; heldAt: string }> {
  const [row] = await db.query<{ held_at: Date }>(
    `update reports set hold_reason = $3, held_by = $4, held_at = coalesce(held_at, now())
      where project_id = $1 and id = $2 returning held_at`,
    [projectId, reportId, reason, memberId],
  );
  if (!row) throw new NotFoundError("No such report.");
  return { reportId, reason, heldBy: memberId, heldAt: row.held_at.toISOString() };
}

/** Lifts a report's legal hold (lifting none is fine). */
export async function releaseReport(
  db: Queryable,
  projectId: string,
  reportId: string,
): Promise<void> {
  const rows = await db.query(
    `update reports set hold_reason = null, held_by = null, held_at = null
      where project_id = $1 and id = $2 returning id`,
    [projectId, reportId],
  );
  if (rows.length === 0) throw new NotFoundError("No such report.");
}

/** Sets how long a project keeps deleted reports' values (null: for ever). */
export async function setRetention(
  db: Queryable,
  projectId: string,
  retainDeletedDays: number | null,
): Promise<{ id: string; retainDeletedDays: number | null }> {
  await db.query("update projects set retain_deleted_days = $2 where id = $1", [
    projectId,
    retainDeletedDays,
  ]);
  return { id: projectId, retainDeletedDays };
}

/** What one run of retention did, and what it left for the next. */
export interface RetentionRun {
  made: Erasure[];
  /** Reports whose erasure failed; the run went on with the others, and the next tries them again. */
  failed: { projectId: string; reportId: string; error: unknown }[];
  /** Reports still due when the run's time was up. */
  left: number;
}

/**
 * Retention, run by a schedule: every deleted report whose project keeps
 * deleted reports `retain_deleted_days` days, deleted longer ago than that
 * (by its tombstone's clock), not under legal hold and not yet purged by
 * retention (an erasure requested by `RETENTION_ACTOR`; an admin's, whatever
 * its reason, does not count), has all its values erased, as an erasure
 * with reason `retention`.
 *
 * Each report is erased in a transaction of its own, longest overdue
 * first, until `deadline` (the function has minutes, and a project that
 * turns retention on may have years of deleted reports): what is left, the
 * next run does. A report whose erasure fails holds back no other: the run
 * goes on and says which failed.
 */
export async function runRetention(
  db: Db,
  now: () => number,
  { deadline = Number.POSITIVE_INFINITY }: { deadline?: number } = {},
): Promise<RetentionRun> {
  const due = await db.query<{ project_id: string; id: string }>(
    `select r.project_id, r.id
       from projects p join reports r on r.project_id = p.id
      where p.retain_deleted_days is not null and r.deleted_hlc is not null and r.hold_reason is null
        and left(r.deleted_hlc, 15)::bigint + p.retain_deleted_days::bigint * 86400000 <= $1
        and not exists (select 1 from erasures e where e.project_id = r.project_id and e.report_id = r.id
                          and e.requested_by = $2)
      order by left(r.deleted_hlc, 15)::bigint + p.retain_deleted_days::bigint * 86400000, r.id`,
    [now(), RETENTION_ACTOR],
  );
  const run: RetentionRun = { made: [], failed: [], left: 0 };
  for (const [i, { project_id, id }] of due.entries()) {
    if (now() >= deadline) {
      run.left = due.length - i;
      break;
    }
    try {
      run.made.push(
        await eraseReport(
          db,
          project_id,
          RETENTION_ACTOR,
          { reportId: id, reason: "retention" },
          now,
        ),
      );
    } catch (error) {
      // Held meanwhile: the next run looks again.
      if (!(error instanceof LegalHoldError))
        run.failed.push({ projectId: project_id, reportId: id, error });
    }
  }
  return run;
}
