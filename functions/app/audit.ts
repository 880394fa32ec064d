import type { JsonWebKey } from "node:crypto";
import { checkEntry, type DeviceKeyRecord, type StoredEntry } from "../../core/custody.ts";
import { publicKeyOf } from "../../core/signature.ts";
import type { AuditVerify } from "../../core/wire-custody.ts";
import type { Queryable } from "../adapters/db/db.ts";

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
 * The head of a stored report's audit chain: in its row, or in audit_chains
 * for a report stored without one (by code from before migration 014).
 */
export async function chainHeadOf(
  db: Queryable,
  projectId: string,
  reportId: string,
): Promise<string | null> {
  const [row] = await db.query<{ head: string | null }>(
    `select coalesce(chain_head, (select head from audit_chains h
                                   where h.project_id = r.project_id and h.report_id = r.id)) as head
       from reports r where project_id = $1 and id = $2`,
    [projectId, reportId],
  );
  return row?.head ?? null;
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
              -- A stored report's chain head is in its row (migration 014).
              coalesce((select chain_head from reports r
                         where r.id = audit_log.report_id and r.project_id = audit_log.project_id),
                       (select head from audit_chains h
                         where h.project_id = audit_log.project_id and h.report_id = audit_log.report_id))
                as "chainHead"
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
