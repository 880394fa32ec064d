import type { JsonWebKey } from "node:crypto";
import { valueDigest } from "../../core/audit.ts";
import { checkEntry, type DeviceKeyRecord, type StoredEntry } from "../../core/custody.ts";
import { NotFoundError } from "../../core/errors.ts";
import type { JsonObject } from "../../core/json.ts";
import { publicKeyOf } from "../../core/signature.ts";
import type { AuditVerify } from "../../core/wire-custody.ts";
import type { Db, Queryable } from "../adapters/db/db.ts";

/** An audit row as the verifier reads it: the stored entry, times as the driver gives them. */
type ChainRow = Omit<StoredEntry, "receivedAt" | "appliedAt"> & {
  receivedAt: Date;
  appliedAt: Date;
};

const PAGE = 1000;

/** The signing keys of a project's devices, with when each was registered. */
export async function deviceKeys(
  db: Queryable,
  projectId: string,
): Promise<Map<string, DeviceKeyRecord & { publicKey: JsonWebKey }>> {
  const rows = await db.query<{ id: string; public_key: JsonWebKey; key_registered_at: Date }>(
    "select id, public_key, key_registered_at from devices where project_id = $1 and public_key is not null",
    [projectId],
  );
  return new Map(
    rows.map((r) => [
      r.id,
      {
        key: publicKeyOf(r.public_key),
        publicKey: r.public_key,
        registeredAt: r.key_registered_at.toISOString(),
      },
    ]),
  );
}

/** The columns of an audit row as a `StoredEntry`. */
export const ENTRY_COLUMNS = `seq, project_id as "projectId", change_id as "changeId", report_id as "reportId",
  json_build_object('type', actor_type, 'id', actor_id) as actor, op, hlc, outcome, code, message,
  fields_applied as "fieldsApplied", fields_superseded as "fieldsSuperseded", before, after,
  erased_digests as "erasedDigests", received_at as "receivedAt", applied_at as "appliedAt",
  prev_hash as "prevHash", hash, sig, signed_change as "signedChange"`;

export function toStoredEntry(row: ChainRow): StoredEntry {
  return {
    ...row,
    receivedAt: row.receivedAt.toISOString(),
    appliedAt: row.appliedAt.toISOString(),
  };
}

/**
 * Recomputes every hash chain of a project, a report at a time in seq order,
 * with `checkEntry` (`core/custody.ts`): each row's prev_hash must be its
 * predecessor's hash, its hash must match its content, each value its
 * digest (erased values excepted), and each device's entry its signature.
 * Names the first entry that fails, and why.
 */
export async function verifyAuditChains(db: Queryable, projectId: string): Promise<AuditVerify> {
  const keys = await deviceKeys(db, projectId);
  let checked = 0;
  let signed = 0;
  let unsigned = 0;
  let first: { seq: number; problem: string } | undefined;
  const fail = (seq: number, problem: string) => {
    if (first === undefined || seq < first.seq) first = { seq, problem };
  };
  let after: [string, number] = ["00000000-0000-0000-0000-000000000000", 0];
  let last: (ChainRow & { chainHead: string | null }) | undefined;
  // A chain must end at the head the database recorded when it appended:
  // else entries at its end were taken away.
  const endOfChain = (row: ChainRow & { chainHead: string | null }) => {
    if (row.reportId !== null && row.chainHead !== null && row.chainHead !== row.hash) {
      fail(row.seq, "its report's chain ends here, but it had entries after this one");
    }
  };
  for (;;) {
    const rows = await db.query<ChainRow & { chainHead: string | null }>(
      `select ${ENTRY_COLUMNS},
              (select head from audit_chains h
                where h.project_id = audit_log.project_id and h.report_id = audit_log.report_id) as "chainHead"
         from audit_log
        where project_id = $1 and (report_id, seq) > ($2::uuid, $3::bigint)
        order by report_id, seq limit $4`,
      [projectId, after[0], after[1], PAGE],
    );
    for (const row of rows) {
      checked++;
      const sameChain = last !== undefined && last.reportId === row.reportId;
      if (last && !sameChain) endOfChain(last);
      const entry = toStoredEntry(row);
      const check = checkEntry(entry, sameChain ? last!.hash : null, keys.get(entry.actor.id));
      if (entry.actor.type === "device") {
        if (check.signed) signed++;
        else unsigned++;
      }
      if (check.problem) fail(row.seq, check.problem);
      last = row;
    }
    if (rows.length < PAGE) break;
    after = [last!.reportId ?? "00000000-0000-0000-0000-000000000000", last!.seq];
  }
  if (last) endOfChain(last);
  const found = first as { seq: number; problem: string } | undefined;
  return found === undefined
    ? { ok: true, checked, signed, unsigned }
    : { ok: false, checked, signed, unsigned, firstBadSeq: found.seq, problem: found.problem };
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
