import { existsSync, rmSync } from "node:fs";
import { parseArgs } from "node:util";
import type { JsonObject, JsonValue } from "../core/json.ts";
import { EdgeAgent, EdgeAgentError, SyncBusyError } from "./agent.ts";
import { counted, formatConflict, formatReport } from "./cli-text.ts";
import { CloudRequestError, CloudUnreachableError } from "./client.ts";
import { AGENT_VERSION } from "./version.ts";

/** Each command: how it is called, and what it does. */
const COMMANDS: Record<string, { usage: string; does: string; more?: string }> = {
  init: {
    usage: "init --api URL --client-id ID --client-secret SECRET",
    does: "store the cloud's address and this device's credentials; learn its id",
  },
  create: {
    usage: "create [--id UUID] [--scope S] --set k=v …",
    does: "new report, prints its id",
    more: "v is read as JSON when it parses, else as a string. --scope defaults to the device's only scope, if it has exactly one.",
  },
  update: {
    usage: "update ID --set k=v … [--unset k …]",
    does: "edit fields (--unset writes null)",
    more: "v is read as JSON when it parses, else as a string.",
  },
  delete: { usage: "delete ID", does: "tombstone" },
  show: { usage: "show ID [--json]", does: "one report" },
  list: {
    usage: "list [--json] [--q TEXT]",
    does: "reports, optionally those whose text contains TEXT",
  },
  sync: {
    usage: "sync [--json]",
    does: "one push and pull round",
    more: 'Exit 0 done, 2 cloud unreachable (changes stay queued), 1 other error. With --json a failure prints {"error":{"code","message"}}.',
  },
  run: {
    usage: "run [--interval SECONDS] [--log-format text|json]",
    does: "sync in a loop until SIGINT/SIGTERM",
    more: "Each round is logged on stderr with its ISO time; json: one object per line.",
  },
  status: { usage: "status [--json]", does: "queue counts, last sync, last error" },
  conflicts: { usage: "conflicts [--json]", does: "conflicts this device was part of" },
  backup: {
    usage: "backup FILE [--json]",
    does: "a consistent copy of the agent database, safe while run is writing",
    more: "To restore: stop the agent, remove PATH-wal and PATH-shm, copy FILE to PATH, start it. Changes made since the backup that reached the cloud come back with the next sync; ones that did not are lost.",
  },
  help: { usage: "help [COMMAND]", does: "usage of every command, or of one" },
};

const USAGE = `usage: edge-agent [--db PATH] <command>

${Object.values(COMMANDS)
  .map((c) => `  ${c.usage.padEnd(54)}${c.does}`)
  .join("\n")}

--db defaults to $EDGE_AGENT_DB, else ./edge-agent.db. --version prints the version.
A change sent but not acknowledged is sent again after $EDGE_AGENT_RESEND_AFTER_MS (default 10 minutes).`;

function usageOf(command: string): string {
  const c = COMMANDS[command]!;
  return `usage: edge-agent [--db PATH] ${c.usage}\n\n${c.does}.${c.more ? `\n${c.more}` : ""}`;
}

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

/** Runs one CLI invocation; returns the exit code. */
export async function main(argv: string[], io: Io): Promise<number> {
  let parsed: ReturnType<typeof parse>;
  try {
    parsed = parse(argv);
  } catch (error) {
    io.err(
      `edge-agent: ${parseErrorMessage(error as Error)}\nRun "edge-agent help" for the commands and their options.`,
    );
    return EXIT.error;
  }
  const { values, positionals } = parsed;
  const [command, ...args] = positionals;
  if (values.version) {
    io.out(`edge-agent ${AGENT_VERSION}`);
    return EXIT.ok;
  }
  if (command === "help" || values.help) {
    const topic = command === "help" ? args[0] : command;
    if (topic && !COMMANDS[topic]) {
      io.err(`edge-agent: unknown command "${topic}"\n\n${USAGE}`);
      return EXIT.error;
    }
    io.out(topic ? usageOf(topic) : USAGE);
    return EXIT.ok;
  }
  if (!command) {
    io.err(USAGE);
    return EXIT.error;
  }
  if (!COMMANDS[command]) {
    io.err(`edge-agent: unknown command "${command}"\n\n${USAGE}`);
    return EXIT.error;
  }
  const path = values.db ?? io.env.EDGE_AGENT_DB ?? "./edge-agent.db";
  // Only init creates a database; anything else on a missing one would leave an empty file.
  const created = !existsSync(path);
  if (created && command !== "init") {
    io.err(`edge-agent: no agent database at ${path}; run "edge-agent init" first, or pass --db`);
    return EXIT.error;
  }
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
        const fields = fieldsFrom(values.set);
        if (Object.keys(fields).length === 0) throw new UsageError("create needs --set k=v");
        const report = agent.create(fields, {
          ...(values.id ? { id: values.id } : {}),
          ...(values.scope ? { scope: values.scope } : {}),
        });
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
            `key       ${s.signingKey ?? "none: changes are sent unsigned"}`,
            `scopes    ${s.scopes.length ? s.scopes.join(", ") : "all (the whole project)"}`,
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
        const self = agent.status().deviceId;
        print(
          conflicts,
          conflicts.map((c) => formatConflict(c, self)).join("\n") || "no conflicts",
        );
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
          `pushed ${summary.pushed}, rejected ${summary.rejected}, failed ${summary.failed}; pulled ${counted(summary.pulledReports, "report")}, ${counted(summary.acks, "ack")}, ${counted(summary.conflicts, "conflict")}`,
        );
        return EXIT.ok;
      }
      case "run": {
        const seconds = Number(values.interval ?? 10);
        if (!Number.isFinite(seconds) || seconds <= 0)
          throw new UsageError("--interval takes seconds > 0");
        const format = values["log-format"] ?? "text";
        if (format !== "text" && format !== "json")
          throw new UsageError(`--log-format takes text or json, not ${format}`);
        const log = (level: "info" | "warn", message: string, details: object) =>
          io.err(
            format === "json"
              ? JSON.stringify({ time: new Date().toISOString(), level, message, ...details })
              : `${new Date().toISOString()} ${message}`,
          );
        const stop = new AbortController();
        const onSignal = () => stop.abort();
        process.once("SIGINT", onSignal);
        process.once("SIGTERM", onSignal);
        await agent.run({
          intervalMs: seconds * 1000,
          signal: stop.signal,
          onRound: (r) =>
            r.ok
              ? log(
                  "info",
                  `synced: pushed ${r.summary.pushed}, rejected ${r.summary.rejected}, pulled ${r.summary.pulledReports}`,
                  { summary: r.summary },
                )
              : log(
                  "warn",
                  `sync failed: ${r.error.message}; retrying in ${Math.round(r.retryInMs / 100) / 10} s`,
                  { error: r.error.message, retryInMs: r.retryInMs },
                ),
        });
        return EXIT.ok;
      }
      case "backup": {
        const file = args[0];
        if (!file) throw new UsageError("backup needs a FILE to write");
        if (existsSync(file)) throw new UsageError(`${file} exists; back up to a new file`);
        await agent.backup(file);
        const s = agent.status();
        print(
          { file, ...s },
          `backed up to ${file}: ${counted(s.pending + s.sent, "change")} not yet applied`,
        );
        return EXIT.ok;
      }
      default:
        throw new UsageError(`unknown command "${command}"`);
    }
  } catch (error) {
    const code = failureCode(error);
    if (values.json) io.out(JSON.stringify({ error: { code, message: (error as Error).message } }));
    if (error instanceof UsageError) {
      io.err(`edge-agent: ${error.message}\n\n${usageOf(command)}`);
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
    // An init that did not get as far as learning the device id leaves nothing behind.
    const unused = created && agent.status().deviceId === null;
    agent.close();
    if (unused)
      for (const suffix of ["", "-wal", "-shm"]) rmSync(`${path}${suffix}`, { force: true });
  }
}

/** The stable code a failure is printed with under --json. */
function failureCode(error: unknown): string {
  if (error instanceof UsageError) return "usage";
  if (error instanceof CloudUnreachableError) return "cloud_unreachable";
  if (error instanceof SyncBusyError) return "sync_busy";
  if (error instanceof EdgeAgentError || error instanceof CloudRequestError) return error.code;
  return "error";
}

/** node's parser messages, said the way the rest of the CLI speaks. */
function parseErrorMessage(error: Error & { code?: string }): string {
  const option = /'(-[^']*)'/.exec(error.message)?.[1];
  if (error.code === "ERR_PARSE_ARGS_UNKNOWN_OPTION" && option) return `unknown option ${option}`;
  if (error.code === "ERR_PARSE_ARGS_INVALID_OPTION_VALUE" && option)
    return `option ${option} needs a value`;
  return error.message;
}

const OPTIONS = {
  db: { type: "string" },
  json: { type: "boolean" },
  help: { type: "boolean", short: "h" },
  version: { type: "boolean" },
  "log-format": { type: "string" },
  api: { type: "string" },
  "client-id": { type: "string" },
  "client-secret": { type: "string" },
  id: { type: "string" },
  scope: { type: "string" },
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
