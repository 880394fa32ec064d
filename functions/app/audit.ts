import type { JsonWebKey } from "node:crypto";
import * as z from "zod";
import { checkEntry, type DeviceKeyRecord, type StoredEntry } from "../../core/custody.ts";
import { publicKeyOf } from "../../core/signature.ts";
import type { AuditVerify } from "../../core/wire-custody.ts";
import type { Queryable } from "../adapters/db/db.ts";
import { decode, encode } from "./listing.ts";

/** An audit row as the verifier reads it: the stored entry, times as the driver gives them. */
type ChainRow = Omit<StoredEntry, "receivedAt" | "appliedAt"> & {
  receivedAt: Date;
  appliedAt: Date;
};
/** An audit row with the head its report's chain had when last appended to. */
type ChainEntryRow = ChainRow & { chainHead: string | null };

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
  prev_hash as "prevHash", hash, sig, signed_change as "signedChange", seed, salts`;

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

/** Where a part of a verification stopped: the last entry it checked. */
type Position = [reportId: string, seq: number];
const PositionSchema = z.tuple([z.uuid(), z.number().int().min(0)]);
/** Before the first chain: the nil UUID sorts first (it is the chain of rejected changes without a report). */
const START: Position = ["00000000-0000-0000-0000-000000000000", 0];

export interface VerifyPartOptions {
  /** A `nextCursor` an earlier part returned. */
  cursor?: string | undefined;
  /** Entries to check at most. */
  limit?: number;
  /** Stop before the next entry once `now()` has reached this. */
  deadline?: number;
  now?: () => number;
}

/**
 * Recomputes a project's hash chains, a report at a time in seq order,
 * with `checkEntry` (`core/custody.ts`): each row's prev_hash must be its
 * predecessor's hash, its hash must match its content, each value its
 * digest (erased values excepted), and each device's entry its signature.
 * Names the first entry (lowest seq) that fails, and why.
 *
 * Checking a signature costs about 145 µs here and more in a small Lambda,
 * so a large project cannot be checked within one call's time. This checks
 * one part: from `cursor` until `limit` entries or the `deadline`, and says
 * where the next part starts. It always checks at least one entry, and
 * stops only where one is left. The next part reads the entry it stopped at
 * again, as the predecessor of the next.
 */
export async function verifyAuditPart(
  db: Queryable,
  projectId: string,
  { cursor, limit = Number.POSITIVE_INFINITY, deadline, now = Date.now }: VerifyPartOptions = {},
): Promise<AuditVerify> {
  const keys = await deviceKeys(db, projectId);
  const from = decode(cursor, PositionSchema);
  let checked = 0;
  let signed = 0;
  let unsigned = 0;
  let first: { seq: number; problem: string } | undefined;
  const fail = (seq: number, problem: string) => {
    if (first === undefined || seq < first.seq) first = { seq, problem };
  };
  let after: Position = from ?? START;
  // Resuming, the first row read is the entry the last part stopped at.
  let inclusive = from !== undefined;
  let last: ChainEntryRow | undefined;
  let stoppedAt: Position | undefined;
  // A chain must end at the head the database recorded when it appended:
  // else entries at its end were taken away.
  const endOfChain = (row: ChainEntryRow) => {
    if (row.reportId !== null && row.chainHead !== null && row.chainHead !== row.hash) {
      fail(row.seq, "its report's chain ends here, but it had entries after this one");
    }
  };
  pages: for (;;) {
    const rows = await db.query<ChainEntryRow>(
      `select ${ENTRY_COLUMNS},
              -- A stored report's chain head is in its row (migration 014).
              coalesce((select chain_head from reports r
                         where r.id = audit_log.report_id and r.project_id = audit_log.project_id),
                       (select head from audit_chains h
                         where h.project_id = audit_log.project_id and h.report_id = audit_log.report_id))
                as "chainHead"
         from audit_log
        where project_id = $1 and (report_id, seq) ${inclusive ? ">=" : ">"} ($2::uuid, $3::bigint)
        order by report_id, seq limit $4`,
      [projectId, after[0], after[1], PAGE],
    );
    for (const row of rows) {
      if (inclusive) {
        inclusive = false;
        if (row.reportId === after[0] && row.seq === after[1]) {
          last = row;
          continue;
        }
      }
      if (checked > 0 && (checked >= limit || (deadline !== undefined && now() >= deadline))) {
        stoppedAt = [last!.reportId ?? START[0], last!.seq];
        break pages;
      }
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
    after = [last!.reportId ?? START[0], last!.seq];
  }
  if (last && !stoppedAt) endOfChain(last);
  const found = first as { seq: number; problem: string } | undefined;
  return {
    ok: found === undefined,
    checked,
    signed,
    unsigned,
    ...(found ? { firstBadSeq: found.seq, problem: found.problem } : {}),
    complete: stoppedAt === undefined,
    nextCursor: stoppedAt ? encode(stoppedAt) : null,
  };
}

/** Every chain of a project in one part, however long it takes (tests, tools): see `verifyAuditPart`. */
export const verifyAuditChains = (db: Queryable, projectId: string): Promise<AuditVerify> =>
  verifyAuditPart(db, projectId);
