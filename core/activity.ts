import { canonicalJson, sha256 } from "./audit.ts";
import type { AuditVerify } from "./wire-custody.ts";
import type { ActivityEntry } from "./wire-fleet.ts";

/*
 * The activity log: who changed who may do what in a project, and who took
 * its data out (DESIGN.md "Custody"). Reports' changes have their own chains
 * in the audit log; these are the actions around them: devices and members
 * added and revoked, scopes set, legal holds placed and lifted, retention
 * set, evidence exported, dead letters redriven. One hash chain per
 * project, append-only.
 */

/** What an entry's hash covers: every field but `seq` (given by the database) and the hash. */
export function activityHash(entry: Omit<ActivityEntry, "seq" | "hash">): string {
  const { projectId, at, actor, action, targetId, details, prevHash } = entry;
  return sha256(canonicalJson({ projectId, at, actor, action, targetId, details, prevHash }));
}

/** What `GET /v1/audit/verify` says of the activity chain. */
export type ActivityCheck = NonNullable<AuditVerify["activity"]>;

/** Checks a project's whole activity chain, oldest first: each hash, and each link to the one before. */
export function checkActivity(entries: readonly ActivityEntry[]): ActivityCheck {
  let prev: string | null = null;
  for (const entry of entries) {
    const problem =
      entry.prevHash !== prev
        ? "its prevHash is not the hash of the entry before it"
        : activityHash(entry) !== entry.hash
          ? "its hash does not match its contents"
          : undefined;
    if (problem) return { ok: false, checked: entries.length, firstBadSeq: entry.seq, problem };
    prev = entry.hash;
  }
  return { ok: true, checked: entries.length };
}
