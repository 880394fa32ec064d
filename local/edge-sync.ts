// `npx edge-sync <command>`: tools for those who hold the cloud to account,
// run from a checkout: `verify-evidence FILE`, which needs no database and
// no network, and `verify-audit`, which has the cloud check its audit log.
import { readFile } from "node:fs/promises";
import { checkEvidence } from "../core/evidence.ts";
import { VERIFY_AUDIT_USAGE, verifyAudit } from "./verify-audit.ts";

const USAGE = `usage: edge-sync verify-evidence FILE
       edge-sync verify-audit --api URL [--client-id ID --client-secret SECRET] [--limit N]

  verify-evidence FILE   check a report's evidence bundle (GET /v1/reports/{id}/evidence)
                         offline: every hash, the chain's order, every signature against
                         the bundled keys, and that the report is what its history produces.
                         Exit 0 valid, 3 invalid (each problem printed), 1 unreadable or misused.
${VERIFY_AUDIT_USAGE}`;

export interface Io {
  out: (text: string) => void;
  err: (text: string) => void;
  env?: Record<string, string | undefined>;
}

export async function main(args: string[], io: Io): Promise<number> {
  const [command, file, ...rest] = args;
  if (command === "help" || command === "--help" || command === undefined) {
    (command === undefined ? io.err : io.out)(USAGE);
    return command === undefined ? 1 : 0;
  }
  if (command === "verify-audit") return verifyAudit(args.slice(1), io);
  if (command !== "verify-evidence" || !file || rest.length > 0) {
    io.err(USAGE);
    return 1;
  }
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (error) {
    io.err(`edge-sync: cannot read ${file}: ${(error as Error).message}`);
    return 1;
  }
  let bundle: unknown;
  try {
    bundle = JSON.parse(text);
  } catch (error) {
    io.out(`INVALID ${file}: not JSON (${(error as Error).message})`);
    return 3;
  }
  const check = checkEvidence(bundle);
  if (check.ok) {
    io.out(
      `VALID report ${check.reportId}: ${check.checked} entries, ${check.signed} signed by their devices, ${check.unsigned} unsigned; every hash, link and signature checks, and the report is what its history produces.`,
    );
    return 0;
  }
  io.out(`INVALID report ${check.reportId ?? "(unknown)"}: ${check.problems.length} problem(s)`);
  for (const problem of check.problems) io.out(`  - ${problem}`);
  return 3;
}
