import { parseArgs } from "node:util";
import { type AuditVerify, AuditVerifySchema } from "../core/wire-custody.ts";
import type { Io } from "./edge-sync.ts";
import { ApiCallError, apiClient, type ClientCredentials } from "./provision.ts";

/*
 * `npx edge-sync verify-audit`: has the cloud check every hash chain and
 * signature of a project (`GET /v1/audit/verify`), part after part until
 * the last, and sums the parts into one answer.
 */

export const VERIFY_AUDIT_USAGE = `  verify-audit --api URL [--client-id ID --client-secret SECRET] [--limit N]
                         have the cloud check every hash chain and signature of the project
                         of an auditor's or admin's client (GET /v1/audit/verify), in as many
                         parts as it takes. The client may also come from $EDGE_SYNC_CLIENT_ID
                         and $EDGE_SYNC_CLIENT_SECRET. --limit: entries per part (default: as
                         many as the cloud checks in one call).
                         The project's activity log (GET /v1/activity) is checked too.
                         Exit 0 every chain holds, 3 one does not (the first bad entry printed),
                         1 misused, refused or unreachable.`;

/** GETs of the API with a token got with client credentials, got again when it runs out. */
function authorized(api: string, client: ClientCredentials) {
  const calls = apiClient(api);
  let token: string | undefined;
  return async (path: string): Promise<unknown> => {
    const stale = token !== undefined;
    token ??= await calls.token(client);
    try {
      return await calls.get(path, token);
    } catch (error) {
      // A token lasts 15 minutes; a long verification outlives it.
      if (!(stale && error instanceof ApiCallError && error.status === 401)) throw error;
      token = await calls.token(client);
      return calls.get(path, token);
    }
  };
}

export async function verifyAudit(args: string[], io: Io): Promise<number> {
  let values: { api?: string; "client-id"?: string; "client-secret"?: string; limit?: string };
  try {
    ({ values } = parseArgs({
      args,
      options: {
        api: { type: "string" },
        "client-id": { type: "string" },
        "client-secret": { type: "string" },
        limit: { type: "string" },
      },
    }));
  } catch (error) {
    io.err(`edge-sync: ${(error as Error).message}\nusage:\n${VERIFY_AUDIT_USAGE}`);
    return 1;
  }
  const env = io.env ?? process.env;
  const clientId = values["client-id"] ?? env.EDGE_SYNC_CLIENT_ID;
  const clientSecret = values["client-secret"] ?? env.EDGE_SYNC_CLIENT_SECRET;
  const limit = values.limit === undefined ? undefined : Number(values.limit);
  if (
    !values.api ||
    !clientId ||
    !clientSecret ||
    (limit !== undefined && !(Number.isInteger(limit) && limit >= 1))
  ) {
    io.err(
      `edge-sync: verify-audit needs --api, a client (--client-id and --client-secret, or $EDGE_SYNC_CLIENT_ID and $EDGE_SYNC_CLIENT_SECRET) and, if given, a whole --limit of at least 1\nusage:\n${VERIFY_AUDIT_USAGE}`,
    );
    return 1;
  }
  const get = authorized(values.api, { clientId, clientSecret });
  const total = { checked: 0, signed: 0, unsigned: 0, parts: 0 };
  let bad: Required<Pick<AuditVerify, "firstBadSeq" | "problem">> | undefined;
  let activity: AuditVerify["activity"];
  let cursor: string | null = null;
  try {
    do {
      const query = new URLSearchParams({
        ...(limit ? { limit: String(limit) } : {}),
        ...(cursor ? { cursor } : {}),
      });
      const part = AuditVerifySchema.parse(await get(`v1/audit/verify?${query}`));
      total.checked += part.checked;
      total.signed += part.signed;
      total.unsigned += part.unsigned;
      total.parts++;
      activity ??= part.activity;
      if (part.firstBadSeq !== undefined && (!bad || part.firstBadSeq < bad.firstBadSeq))
        bad = { firstBadSeq: part.firstBadSeq, problem: part.problem ?? "" };
      cursor = part.nextCursor;
      if (cursor) io.err(`checked ${total.checked} entries so far…`);
    } while (cursor);
  } catch (error) {
    io.err(`edge-sync: verify-audit could not finish: ${(error as Error).message}`);
    return 1;
  }
  const counts = `${total.checked} entries in ${total.parts} part(s), ${total.signed} signed by their devices, ${total.unsigned} unsigned`;
  const activityCounts = activity ? `; activity log: ${activity.checked} entries` : "";
  if (!bad && activity?.ok !== false) {
    io.out(`VALID audit log: ${counts}${activityCounts}; every hash, link and signature checks.`);
    return 0;
  }
  if (bad) {
    io.out(
      `INVALID audit log: ${counts}; the first bad entry is seq ${bad.firstBadSeq}: ${bad.problem}`,
    );
  }
  if (activity && !activity.ok) {
    io.out(
      `INVALID activity log: ${activity.checked} entries; the first bad entry is seq ${activity.firstBadSeq}: ${activity.problem}`,
    );
  }
  return 3;
}
