import { canonicalJson } from "./audit.ts";
import { checkEntry, type DeviceKeyRecord, replayHistory } from "./custody.ts";
import { publicKeyOf } from "./signature.ts";
import { EvidenceBundleSchema } from "./wire-custody.ts";

/** What an evidence check found: every problem, in the order of the history. */
export interface EvidenceCheck {
  ok: boolean;
  reportId: string | null;
  checked: number;
  signed: number;
  unsigned: number;
  problems: string[];
}

/**
 * Checks an evidence bundle (`GET /v1/reports/{id}/evidence`) with nothing
 * but the bundle: every entry's hash, the chain's order from its first entry
 * to the head the database recorded, every signature against the bundled
 * public keys (`checkEntry`, the same checks as `GET /v1/audit/verify`), and
 * that the bundled report is what its history produces when replayed
 * through the merge the cloud applies. Says precisely what fails.
 */
export function checkEvidence(input: unknown): EvidenceCheck {
  const result: EvidenceCheck = {
    ok: false,
    reportId: null,
    checked: 0,
    signed: 0,
    unsigned: 0,
    problems: [],
  };
  const parsed = EvidenceBundleSchema.safeParse(input);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    result.problems.push(
      `not an evidence bundle: ${issue.path.join(".") || "the document"}: ${issue.message}`,
    );
    return result;
  }
  const bundle = parsed.data;
  const { report, history } = bundle;
  result.reportId = report.id;
  const problem = (text: string) => result.problems.push(text);

  const keys = new Map<string, DeviceKeyRecord>();
  for (const [deviceId, { publicKey, registeredAt }] of Object.entries(bundle.devices)) {
    try {
      keys.set(deviceId, { key: publicKeyOf(publicKey), registeredAt });
    } catch (error) {
      problem(`device ${deviceId}: its public key is not usable: ${(error as Error).message}`);
    }
  }

  let previous: { seq: number; hash: string | null } | undefined;
  for (const entry of history) {
    result.checked++;
    const at = `entry seq ${entry.seq} (change ${entry.changeId})`;
    if (entry.reportId !== report.id || entry.projectId !== bundle.projectId) {
      problem(`${at}: belongs to another report or project`);
    }
    if (previous && entry.seq <= previous.seq)
      problem(`${at}: out of order after seq ${previous.seq}`);
    const check = checkEntry(entry, previous?.hash ?? null, keys.get(entry.actor.id));
    if (check.problem) problem(`${at}: ${check.problem}`);
    if (entry.actor.type === "device") {
      if (check.signed) result.signed++;
      else result.unsigned++;
    }
    previous = { seq: entry.seq, hash: entry.hash };
  }
  if ((previous?.hash ?? null) !== bundle.chainHead) {
    problem(
      "the chain does not end at the head the database recorded: entries are missing or added",
    );
  }

  const replay = replayHistory(history);
  if (replay.problem) problem(`entry seq ${replay.problem.seq}: ${replay.problem.problem}`);
  const differs = (name: string, stated: unknown, replayed: unknown) => {
    if (canonicalJson(stated) !== canonicalJson(replayed)) {
      problem(
        `the report's ${name} ${canonicalJson(stated)} is not what its history produces: ${canonicalJson(replayed)}`,
      );
    }
  };
  differs("fields", report.fields, replay.state.fields);
  differs("clocks", report.clocks, replay.state.clocks);
  differs("deleted flag", report.deleted, replay.state.deleted);
  differs("version", report.version, replay.state.version);

  result.ok = result.problems.length === 0;
  return result;
}
