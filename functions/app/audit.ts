import type { JsonWebKey, KeyObject } from "node:crypto";
import { type AuditRecord, hashAuditRecord, valueDigest } from "../../core/audit.ts";
import { NotFoundError } from "../../core/errors.ts";
import type { JsonObject } from "../../core/json.ts";
import { publicKeyOf, verifyChange } from "../../core/signature.ts";
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

/** The signing keys of a project's devices, with when each was registered. */
async function deviceKeys(
  db: Queryable,
  projectId: string,
): Promise<Map<string, { key: KeyObject; registeredAt: Date }>> {
  const rows = await db.query<{ id: string; public_key: JsonWebKey; key_registered_at: Date }>(
    "select id, public_key, key_registered_at from devices where project_id = $1 and public_key is not null",
    [projectId],
  );
  return new Map(
    rows.map((r) => [r.id, { key: publicKeyOf(r.public_key), registeredAt: r.key_registered_at }]),
  );
}

/**
 * What is wrong with a device's entry as to its signature, if anything: a
 * signed entry must carry its device's signature of the change it records,
 * and apply the values the device signed; an entry sent after its device
 * registered a key must be signed.
 */
function signatureProblem(
  row: ChainRow,
  device: { key: KeyObject; registeredAt: Date } | undefined,
  afterDigests: Record<string, string>,
): string | undefined {
  if (row.sig === null) {
    return device && device.registeredAt <= row.receivedAt
      ? "unsigned, but its device had registered a signing key"
      : undefined;
  }
  if (!device) return "signed, but its device has no registered key";
  const signed = row.signedChange;
  if (!signed || !row.reportId || !row.op || !row.hlc)
    return "signed, but what was signed is missing";
  const content = {
    changeId: row.changeId,
    reportId: row.reportId,
    op: row.op,
    hlc: row.hlc,
    ...signed,
  };
  if (!verifyChange(device.key, content, row.sig)) {
    return "the signature is not its device's signature of this change";
  }
  // An edit applies the values its device signed (a delete applies none).
  for (const field of row.op === "upsert" ? row.fieldsApplied : []) {
    const value = signed.fields?.[field];
    if (value === undefined || valueDigest(value) !== afterDigests[field]) {
      return `field ${field} does not hold the value its device signed`;
    }
  }
  return undefined;
}

/**
 * Recomputes every hash chain of a project, a report at a time in seq order:
 * each row's prev_hash must be its predecessor's hash, its hash must match
 * its content, each value its digest (erased values excepted), and each
 * device's entry its signature (DESIGN.md, "Chain of custody"). Names the
 * first entry that fails, and why.
 */
export async function verifyAuditChains(db: Queryable, projectId: string): Promise<AuditVerify> {
  const keys = await deviceKeys(db, projectId);
  let checked = 0;
  let signed = 0;
  let unsigned = 0;
  let first: { seq: number; problem: string } | undefined;
  let after: [string, number] = ["00000000-0000-0000-0000-000000000000", 0];
  let lastChain: string | null = null;
  let lastHash: string | null = null;
  for (;;) {
    const rows = await db.query<ChainRow>(
      `select seq, project_id as "projectId", change_id as "changeId", report_id as "reportId",
              json_build_object('type', actor_type, 'id', actor_id) as actor, op, hlc, outcome, code, message,
              fields_applied as "fieldsApplied", fields_superseded as "fieldsSuperseded", before, after,
              erased_digests as "erasedDigests", received_at as "receivedAt", applied_at as "appliedAt",
              prev_hash as "prevHash", hash, sig, signed_change as "signedChange"
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
      let problem: string | undefined;
      if (beforeDigests === undefined || afterDigests === undefined) {
        problem = "a value was replaced, not erased";
      } else if (row.prevHash !== expectedPrev) {
        problem = "prev_hash does not name the entry before it in its report's chain";
      } else if (row.hash !== expectedHash) {
        problem = "hash does not match the entry's content";
      } else if (row.actor.type === "device") {
        problem = signatureProblem(row, keys.get(row.actor.id), afterDigests);
        if (row.sig === null) unsigned++;
        else signed++;
      }
      if (problem && (first === undefined || row.seq < first.seq)) {
        first = { seq: row.seq, problem };
      }
      lastChain = chain;
      lastHash = row.hash;
    }
    if (rows.length < PAGE) break;
    const last = rows[rows.length - 1]!;
    after = [last.reportId ?? "00000000-0000-0000-0000-000000000000", last.seq];
  }
  return first === undefined
    ? { ok: true, checked, signed, unsigned }
    : { ok: false, checked, signed, unsigned, firstBadSeq: first.seq, problem: first.problem };
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
