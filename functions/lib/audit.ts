import { auditHash, valueDigest } from "../../core/audit.ts";
import type { JsonObject } from "../../core/json.ts";
import type { Queryable } from "./db/db.ts";

interface ChainRow {
  seq: number;
  project_id: string;
  change_id: string;
  report_id: string | null;
  actor_type: string;
  actor_id: string;
  op: string | null;
  hlc: string | null;
  outcome: string;
  code: string | null;
  fields_applied: string[];
  fields_superseded: string[];
  before: JsonObject;
  after: JsonObject;
  before_digests: Record<string, string>;
  after_digests: Record<string, string>;
  received_at: Date;
  applied_at: Date;
  prev_hash: string | null;
  hash: string | null;
}

export interface VerifyResult {
  ok: boolean;
  checked: number;
  firstBadSeq?: number;
}

const PAGE = 1000;

/** Each stored value must match its digest, unless it was erased (null). */
function valuesMatch(values: JsonObject, stored: Record<string, string>): boolean {
  const keys = Object.keys(values);
  if (keys.length !== Object.keys(stored).length) return false;
  return keys.every((k) => values[k] === null || valueDigest(values[k]!) === stored[k]);
}

/**
 * Recomputes every hash chain of a project, a report at a time in seq order:
 * each row's prev_hash must be its predecessor's hash, its hash must match
 * its content, and each value its digest (erased values excepted).
 */
export async function verifyAuditChains(db: Queryable, projectId: string): Promise<VerifyResult> {
  let checked = 0;
  let firstBadSeq: number | undefined;
  let after: [string, number] = ["00000000-0000-0000-0000-000000000000", 0];
  let lastChain: string | null = null;
  let lastHash: string | null = null;
  for (;;) {
    const rows = await db.query<ChainRow>(
      `select seq, project_id, change_id, report_id, actor_type, actor_id, op, hlc, outcome, code,
              fields_applied, fields_superseded, before, after, before_digests, after_digests,
              received_at, applied_at, prev_hash, hash
         from audit_log
        where project_id = $1 and (report_id, seq) > ($2::uuid, $3::bigint)
        order by report_id, seq limit $4`,
      [projectId, after[0], after[1], PAGE],
    );
    for (const row of rows) {
      checked++;
      const chain = row.report_id ?? "";
      const expectedPrev = chain === lastChain ? lastHash : null;
      const expectedHash = auditHash({
        prevHash: row.prev_hash,
        projectId: row.project_id,
        changeId: row.change_id,
        reportId: row.report_id,
        actor: { type: row.actor_type, id: row.actor_id },
        op: row.op,
        hlc: row.hlc,
        outcome: row.outcome,
        code: row.code,
        fieldsApplied: row.fields_applied,
        fieldsSuperseded: row.fields_superseded,
        beforeDigests: row.before_digests,
        afterDigests: row.after_digests,
        receivedAt: row.received_at.toISOString(),
        appliedAt: row.applied_at.toISOString(),
      });
      const good =
        row.prev_hash === expectedPrev &&
        row.hash === expectedHash &&
        valuesMatch(row.before, row.before_digests) &&
        valuesMatch(row.after, row.after_digests);
      if (!good && (firstBadSeq === undefined || row.seq < firstBadSeq)) firstBadSeq = row.seq;
      lastChain = chain;
      lastHash = row.hash;
    }
    if (rows.length < PAGE) break;
    const last = rows[rows.length - 1]!;
    after = [last.report_id ?? "00000000-0000-0000-0000-000000000000", last.seq];
  }
  return firstBadSeq === undefined ? { ok: true, checked } : { ok: false, checked, firstBadSeq };
}
