import { parseArgs } from "node:util";
import type { JsonObject, JsonValue } from "../core/json.ts";
import type { Conflict, Report } from "../core/types.ts";
import { EdgeAgent, EdgeAgentError, SyncBusyError } from "./agent.ts";
import { CloudRequestError, CloudUnreachableError } from "./client.ts";

const USAGE = `usage: edge-agent [--db PATH] <command>

  init --api URL --client-id ID --client-secret SECRET
  create [--id UUID] --set k=v …        new report, prints its id
  update ID --set k=v … [--unset k …]   edit fields
  delete ID                             tombstone
  show ID [--json]                      one report
  list [--json] [--q TEXT]              reports
  sync [--json]                         one push and pull round
  run [--interval SECONDS]              sync in a loop until SIGINT/SIGTERM
  status [--json]                       queue counts, last sync, last error
  conflicts [--json]                    conflicts this device was part of

--db defaults to $EDGE_AGENT_DB, else ./edge-agent.db. v is read as JSON when it parses, else as a string.
A change sent but not acknowledged is sent again after $EDGE_AGENT_RESEND_AFTER_MS (default 10 minutes).`;

/** Exit codes: 0 done, 1 error, 2 cloud unreachable (changes stay queued). */
export const EXIT = { ok: 0, error: 1, unreachable: 2 } as const;

class UsageError extends Error {}

export interface Io {
  out: (text: string) => void;
  err: (text: string) => void;
  isTty: boolean;
  env: NodeJS.ProcessEnv;
}

/** `k=v`: v as JSON when it parses, else the string itself. */
export function parseAssignment(text: string): [string, JsonValue] {
  const eq = text.indexOf("=");
  if (eq <= 0) throw new UsageError(`--set takes k=v, got "${text}"`);
  const raw = text.slice(eq + 1);
  let value: JsonValue;
  try {
    value = JSON.parse(raw) as JsonValue;
  } catch {
    value = raw;
  }
  return [text.slice(0, eq), value];
}

function fieldsFrom(set: string[] = [], unset: string[] = []): JsonObject {
  // fromEntries defines own properties: `--set __proto__=1` becomes a field
  // named __proto__ (which the agent then refuses), never a prototype.
  return Object.fromEntries([
    ...set.map(parseAssignment),
    ...unset.map((k): [string, JsonValue] => [k, null]),
  ]);
}

function formatReport(r: Report): string {
  const lines = [
    `${r.id}${r.deleted ? " (deleted)" : ""}  version ${r.version}  updated ${r.updatedAt}`,
  ];
  for (const [k, v] of Object.entries(r.fields)) lines.push(`  ${k} = ${JSON.stringify(v)}`);
  return lines.join("\n");
}

function formatConflict(c: Conflict): string {
  return `${c.reportId} ${c.field}: kept ${JSON.stringify(c.winner.value)} (${c.winner.deviceId}) over ${JSON.stringify(c.loser.value)} (${c.loser.deviceId}) at ${c.detectedAt}`;
}

/** Runs one CLI invocation; returns the exit code. */
export async function main(argv: string[], io: Io): Promise<number> {
  let parsed: ReturnType<typeof parse>;
  try {
    parsed = parse(argv);
  } catch (error) {
    io.err(`edge-agent: ${(error as Error).message}\n\n${USAGE}`);
    return EXIT.error;
  }
  const { values, positionals } = parsed;
  const [command, ...args] = positionals;
  if (values.help || !command) {
    (command || values.help ? io.out : io.err)(USAGE);
    return values.help ? EXIT.ok : EXIT.error;
  }
  const path = values.db ?? io.env.EDGE_AGENT_DB ?? "./edge-agent.db";
  const resendAfterMs = Number(io.env.EDGE_AGENT_RESEND_AFTER_MS);
  const agent = EdgeAgent.open(
    path,
    Number.isFinite(resendAfterMs) && resendAfterMs > 0 ? { resendAfterMs } : {},
  );
  const print = (json: unknown, text: string) => io.out(values.json ? JSON.stringify(json) : text);
  try {
    const id = () => {
      if (!args[0]) throw new UsageError(`${command} needs a report id`);
      return args[0];
    };
    switch (command) {
      case "init": {
        if (!values.api || !values["client-id"] || !values["client-secret"]) {
          throw new UsageError("init needs --api, --client-id and --client-secret");
        }
        if (!URL.canParse(values.api) || !/^https?:$/.test(new URL(values.api).protocol)) {
          throw new UsageError(`--api must be an http(s) URL, not ${values.api}`);
        }
        const who = await agent.init(values.api, values["client-id"], values["client-secret"]);
        print(who, `initialized device ${who.deviceId} (project ${who.projectId})`);
        return EXIT.ok;
      }
      case "create": {
        const report = agent.create(fieldsFrom(values.set), values.id);
        print(report, report.id);
        return EXIT.ok;
      }
      case "update": {
        const fields = fieldsFrom(values.set, values.unset);
        if (Object.keys(fields).length === 0) throw new UsageError("update needs --set or --unset");
        const report = agent.update(id(), fields);
        print(report, formatReport(report));
        return EXIT.ok;
      }
      case "delete": {
        const report = agent.delete(id());
        print(report, `deleted ${report.id}`);
        return EXIT.ok;
      }
      case "show": {
        const report = agent.get(id());
        if (!report) throw new EdgeAgentError("not_found", `No report ${args[0]}.`);
        print(report, formatReport(report));
        return EXIT.ok;
      }
      case "list": {
        const reports = agent.list(values.q);
        print(reports, reports.map(formatReport).join("\n") || "no reports");
        return EXIT.ok;
      }
      case "status": {
        const s = agent.status();
        print(
          s,
          [
            `device    ${s.deviceId ?? "(not initialized)"} → ${s.apiUrl ?? "-"}`,
            `outbox    ${s.pending} pending, ${s.sent} sent, ${s.applied} applied, ${s.partial} partial, ${s.superseded} superseded, ${s.rejected} rejected`,
            `conflicts ${s.conflicts}`,
            `last sync ${s.lastSyncAt ?? "never"}${s.lastError ? `\nlast error ${s.lastError}` : ""}`,
            ...s.rejectedChanges.map(
              (r) =>
                `rejected  ${r.changeId} (report ${r.reportId}): ${r.code}: ${r.message}${r.replacedBy ? ` (sent again as ${r.replacedBy})` : ""}`,
            ),
          ].join("\n"),
        );
        return EXIT.ok;
      }
      case "conflicts": {
        const conflicts = agent.conflicts();
        print(conflicts, conflicts.map(formatConflict).join("\n") || "no conflicts");
        return EXIT.ok;
      }
      case "sync": {
        const progress = io.isTty && !values.json;
        const summary = await agent.syncOnce(
          progress
            ? (p) =>
                io.err(p.phase === "push" ? `pushed ${p.done} of ${p.total}` : `pulled ${p.done}`)
            : undefined,
        );
        print(
          { ...summary, status: agent.status() },
          `pushed ${summary.pushed}, rejected ${summary.rejected}, failed ${summary.failed}; pulled ${summary.pulledReports} reports, ${summary.acks} acks, ${summary.conflicts} conflicts`,
        );
        return EXIT.ok;
      }
      case "run": {
        const seconds = Number(values.interval ?? 10);
        if (!Number.isFinite(seconds) || seconds <= 0)
          throw new UsageError("--interval takes seconds > 0");
        const stop = new AbortController();
        const onSignal = () => stop.abort();
        process.once("SIGINT", onSignal);
        process.once("SIGTERM", onSignal);
        await agent.run({
          intervalMs: seconds * 1000,
          signal: stop.signal,
          onRound: (r) =>
            io.err(
              r.ok
                ? `synced: pushed ${r.summary.pushed}, rejected ${r.summary.rejected}, pulled ${r.summary.pulledReports}`
                : `sync failed: ${r.error.message}; retrying in ${Math.round(r.retryInMs / 100) / 10} s`,
            ),
        });
        return EXIT.ok;
      }
      default:
        throw new UsageError(`unknown command "${command}"`);
    }
  } catch (error) {
    if (error instanceof UsageError) {
      io.err(`edge-agent: ${error.message}\n\n${USAGE}`);
      return EXIT.error;
    }
    if (error instanceof CloudUnreachableError) {
      io.err(`edge-agent: cloud unreachable: ${error.message} (changes stay queued)`);
      return EXIT.unreachable;
    }
    if (error instanceof SyncBusyError) {
      io.err(`edge-agent: ${error.message}`);
      return EXIT.error;
    }
    if (error instanceof EdgeAgentError || error instanceof CloudRequestError) {
      io.err(`edge-agent: ${error.code}: ${error.message}`);
      return EXIT.error;
    }
    io.err(`edge-agent: ${(error as Error).message}`);
    return EXIT.error;
  } finally {
    agent.close();
  }
}

const OPTIONS = {
  db: { type: "string" },
  json: { type: "boolean" },
  help: { type: "boolean", short: "h" },
  api: { type: "string" },
  "client-id": { type: "string" },
  "client-secret": { type: "string" },
  id: { type: "string" },
  set: { type: "string", multiple: true },
  unset: { type: "string", multiple: true },
  q: { type: "string" },
  interval: { type: "string" },
} as const;

const TAKES_VALUE = new Set(
  Object.entries(OPTIONS)
    .filter(([, option]) => option.type === "string")
    .map(([name]) => `--${name}`),
);

/**
 * `--opt value` becomes `--opt=value` for every option that takes a value,
 * whatever the value looks like: node's parser refuses a value that starts
 * with `-` (a secret, a negative number) as ambiguous.
 */
function joinValues(argv: string[]): string[] {
  const joined: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === "--") {
      joined.push(...argv.slice(i));
      break;
    }
    if (TAKES_VALUE.has(arg) && i + 1 < argv.length) joined.push(`${arg}=${argv[++i]}`);
    else joined.push(arg);
  }
  return joined;
}

function parse(argv: string[]) {
  return parseArgs({
    args: joinValues(argv),
    allowPositionals: true,
    strict: true,
    options: OPTIONS,
  });
}
