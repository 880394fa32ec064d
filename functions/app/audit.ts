import { type AuditRecord, hashAuditRecord, valueDigest } from "../../core/audit.ts";
import { NotFoundError } from "../../core/errors.ts";
import type { JsonObject } from "../../core/json.ts";
import type { AuditVerify } from "../../core/wire.ts";
import type { Db, Queryable } from "../adapters/db/db.ts";

/** An audit row as the verifier reads it: the record, its stored hash and erasures. */
type ChainRow = Omit<AuditRecord, "receivedAt" | "appliedAt"> & {
  seq: number;
  receivedAt: Date;
  appliedAt: Date;
  erasedDigests: Record<string, string>;
  hash: string | null;
};

const PAGE = 1000;

/**
 * The digests a row's hash covers: each value's own, or for an erased value
 * the digest recorded when it was erased. Undefined when a value was
 * replaced rather than erased (an erased digest beside a non-null value).
 */
function digestsOf(
  side: "before" | "after",
  values: JsonObject,
  erased: Record<string, string>,
): Record<string, string> | undefined {
  const out: Record<string, string> = {};
  for (const [field, value] of Object.entries(values)) {
    const recorded = erased[`${side}:${field}`];
    if (recorded !== undefined && value !== null) return undefined;
    out[field] = recorded ?? valueDigest(value);
  }
  return out;
}

/**
 * Recomputes every hash chain of a project, a report at a time in seq order:
 * each row's prev_hash must be its predecessor's hash, its hash must match
 * its content, and each value its digest (erased values excepted).
 */
export async function verifyAuditChains(db: Queryable, projectId: string): Promise<AuditVerify> {
  let checked = 0;
  let firstBadSeq: number | undefined;
  let after: [string, number] = ["00000000-0000-0000-0000-000000000000", 0];
  let lastChain: string | null = null;
  let lastHash: string | null = null;
  for (;;) {
    const rows = await db.query<ChainRow>(
      `select seq, project_id as "projectId", change_id as "changeId", report_id as "reportId",
              json_build_object('type', actor_type, 'id', actor_id) as actor, op, hlc, outcome, code, message,
              fields_applied as "fieldsApplied", fields_superseded as "fieldsSuperseded", before, after,
              erased_digests as "erasedDigests", received_at as "receivedAt", applied_at as "appliedAt",
              prev_hash as "prevHash", hash
         from audit_log
        where project_id = $1 and (report_id, seq) > ($2::uuid, $3::bigint)
        order by report_id, seq limit $4`,
      [projectId, after[0], after[1], PAGE],
    );
    for (const row of rows) {
      checked++;
      const chain = row.reportId ?? "";
      const expectedPrev = chain === lastChain ? lastHash : null;
      const beforeDigests = digestsOf("before", row.before, row.erasedDigests);
      const afterDigests = digestsOf("after", row.after, row.erasedDigests);
      const expectedHash = hashAuditRecord(
        {
          ...row,
          receivedAt: row.receivedAt.toISOString(),
          appliedAt: row.appliedAt.toISOString(),
        },
        { before: beforeDigests ?? {}, after: afterDigests ?? {} },
      );
      const good =
        beforeDigests !== undefined &&
        afterDigests !== undefined &&
        row.prevHash === expectedPrev &&
        row.hash === expectedHash;
      if (!good && (firstBadSeq === undefined || row.seq < firstBadSeq)) firstBadSeq = row.seq;
      lastChain = chain;
      lastHash = row.hash;
    }
    if (rows.length < PAGE) break;
    const last = rows[rows.length - 1]!;
    after = [last.reportId ?? "00000000-0000-0000-0000-000000000000", last.seq];
  }
  return firstBadSeq === undefined ? { ok: true, checked } : { ok: false, checked, firstBadSeq };
}

/**
 * Erases one field's values from one audit row (a data-protection request):
 * the values become null and their digests are kept in `erased_digests`, so
 * the hash chain still verifies. The database allows this update only with
 * the erasure flag set, and only in this shape.
 *
 * @returns whether the row held the field.
 */
export async function eraseAuditValue(
  db: Db,
  projectId: string,
  seq: number,
  field: string,
): Promise<boolean> {
  return db.transaction(async (tx) => {
    const [row] = await tx.query<{
      before: JsonObject;
      after: JsonObject;
      erased_digests: Record<string, string>;
    }>(
      "select before, after, erased_digests from audit_log where project_id = $1 and seq = $2 for update",
      [projectId, seq],
    );
    if (!row) throw new NotFoundError(`No audit entry ${seq}.`);
    const erased = { ...row.erased_digests };
    const before = { ...row.before };
    const after = { ...row.after };
    let touched = false;
    for (const [side, values] of [
      ["before", before],
      ["after", after],
    ] as const) {
      if (!(field in values)) continue;
      touched = true;
      const key = `${side}:${field}`;
      if (erased[key] === undefined) erased[key] = valueDigest(values[field]!);
      values[field] = null;
    }
    if (!touched) return false;
    await tx.query("select set_config('edge_sync.audit_erasure', 'on', true)");
    await tx.query(
      "update audit_log set before = $2::jsonb, after = $3::jsonb, erased_digests = $4::jsonb where seq = $1",
      [seq, JSON.stringify(before), JSON.stringify(after), JSON.stringify(erased)],
    );
    await tx.query("select set_config('edge_sync.audit_erasure', 'off', true)");
    return true;
  });
}
