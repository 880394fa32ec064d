import { EVIDENCE_FORMAT, type EvidenceBundle } from "../../core/wire-custody.ts";
import type { Db, Queryable } from "../adapters/db/db.ts";
import { chainHeadOf, deviceKeys, ENTRY_COLUMNS, toStoredEntry } from "./audit.ts";
import { getReport } from "./read.ts";

/**
 * One report's evidence bundle (`GET /v1/reports/{id}/evidence`): the report,
 * its whole history with hashes and signatures, the head of its chain as the
 * database records it, and the public keys of the devices in it. Read from
 * one snapshot (repeatable read), so the parts agree; `npx edge-sync verify-evidence`
 * checks it with nothing else (`core/evidence.ts`).
 *
 * @throws NotFoundError when the project has no such report.
 */
export function reportEvidence(
  db: Db,
  projectId: string,
  reportId: string,
  now: () => number,
): Promise<EvidenceBundle> {
  return db.transaction(async (tx) => {
    await tx.query("set transaction isolation level repeatable read");
    return read(tx, projectId, reportId, now);
  });
}

async function read(
  db: Queryable,
  projectId: string,
  reportId: string,
  now: () => number,
): Promise<EvidenceBundle> {
  const report = await getReport(db, projectId, reportId);
  const rows = await db.query<Parameters<typeof toStoredEntry>[0]>(
    `select ${ENTRY_COLUMNS} from audit_log where project_id = $1 and report_id = $2 order by seq`,
    [projectId, reportId],
  );
  const chainHead = await chainHeadOf(db, projectId, reportId);
  const history = rows.map(toStoredEntry);
  const actors = new Set(history.map((e) => e.actor.id));
  const devices: EvidenceBundle["devices"] = {};
  for (const [id, { publicKey, registeredAt }] of await deviceKeys(db, projectId)) {
    if (actors.has(id)) devices[id] = { publicKey: publicKey as never, registeredAt };
  }
  return {
    format: EVIDENCE_FORMAT,
    exportedAt: new Date(now()).toISOString(),
    projectId,
    report,
    history,
    chainHead,
    devices,
  };
}
