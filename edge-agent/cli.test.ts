import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import pkg from "../packages/edge-agent/package.json" with { type: "json" };
import { EdgeAgent } from "./agent.ts";
import { main } from "./cli.ts";

/** One CLI invocation in this process, its output captured. */
async function cli(args: string[], env: NodeJS.ProcessEnv = {}) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(args, {
    out: (text) => out.push(text),
    err: (text) => err.push(text),
    isTty: false,
    env,
  });
  return { code, stdout: out.join("\n"), stderr: err.join("\n") };
}

/** An agent as init leaves it, pointing at a cloud that is not there. */
function initialized(path: string): void {
  EdgeAgent.open(path).close();
  const raw = new Database(path);
  const set = raw.prepare("insert into meta (key, value) values (?, ?)");
  set.run("apiUrl", "http://127.0.0.1:1");
  set.run("deviceId", crypto.randomUUID());
  set.run("clientId", "dev_x");
  set.run("clientSecret", "s");
  raw.close();
}

describe("edge-agent CLI conventions", () => {
  it("runs from a checkout, the TypeScript compiled as it loads (npx edge-agent)", () => {
    const bin = join(import.meta.dirname, "bin.js");
    expect(execFileSync(process.execPath, [bin, "--version"], { encoding: "utf8" })).toBe(
      `edge-agent ${pkg.version}\n`,
    );
  });

  let dir: string;
  let path: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "edge-cli-"));
    path = join(dir, "agent.db");
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  it("prints its version, and usage of every command or of one, with exit 0", async () => {
    expect(await cli(["--version"])).toMatchObject({
      code: 0,
      stdout: `edge-agent ${pkg.version}`,
    });

    const all = await cli(["help"]);
    expect(all.code).toBe(0);
    for (const command of ["init", "create", "update", "sync", "run", "status", "conflicts"])
      expect(all.stdout).toContain(`  ${command}`);

    const one = await cli(["help", "sync"]);
    expect(one.code).toBe(0);
    expect(one.stdout).toMatch(/^usage: edge-agent \[--db PATH\] sync \[--json\]/);
    expect(one.stdout).toContain("2 cloud unreachable");
    expect(one.stdout).not.toContain("conflicts [--json]");
    expect(await cli(["sync", "--help"])).toEqual(one);

    const unknown = await cli(["help", "frobnicate"]);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain('unknown command "frobnicate"');
    expect(await readdir(dir)).toEqual([]);
  });

  it("says which option it does not know, in its own words", async () => {
    const result = await cli(["status", "--frobnicate"], { EDGE_AGENT_DB: path });
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/^edge-agent: unknown option --frobnicate\n/);
    expect(result.stderr).toContain('Run "edge-agent help"');
    expect(result.stderr).not.toContain("positional");
  });

  it("leaves no database behind: a command before init, or an init that fails", async () => {
    const status = await cli(["status"], { EDGE_AGENT_DB: path });
    expect(status.code).toBe(1);
    expect(status.stderr).toContain(`no agent database at ${path}; run "edge-agent init" first`);

    // Nothing listens on port 1.
    const init = await cli(
      ["init", "--api", "http://127.0.0.1:1", "--client-id", "dev_x", "--client-secret", "s"],
      { EDGE_AGENT_DB: path },
    );
    expect(init.code).not.toBe(0);
    expect(await readdir(dir)).toEqual([]);
  });

  it("prints one error document for --json when the cloud cannot be reached, and keeps the change", async () => {
    initialized(path);
    expect((await cli(["create", "--set", "title=x"], { EDGE_AGENT_DB: path })).code).toBe(0);

    const sync = await cli(["sync", "--json"], { EDGE_AGENT_DB: path });
    expect(sync.code).toBe(2);
    expect(JSON.parse(sync.stdout)).toEqual({
      error: { code: "cloud_unreachable", message: expect.any(String) },
    });
    expect(existsSync(path)).toBe(true);
    const status = JSON.parse((await cli(["status", "--json"], { EDGE_AGENT_DB: path })).stdout);
    expect(status).toMatchObject({ pending: 1 });
  });

  it("asks for a field when create or update names none, and stores nothing", async () => {
    initialized(path);
    const env = { EDGE_AGENT_DB: path };
    const create = await cli(["create"], env);
    expect(create.code).toBe(1);
    expect(create.stderr).toMatch(/^edge-agent: create needs --set k=v\n/);
    const id = (await cli(["create", "--set", "title=x"], env)).stdout;
    const update = await cli(["update", id], env);
    expect(update.code).toBe(1);
    expect(update.stderr).toMatch(/^edge-agent: update needs --set or --unset\n/);
    expect(JSON.parse((await cli(["status", "--json"], env)).stdout)).toMatchObject({ pending: 1 });
  });

  it("refuses a log format it does not know before syncing anything", async () => {
    EdgeAgent.open(path).close();
    const run = await cli(["run", "--log-format", "xml"], { EDGE_AGENT_DB: path });
    expect(run.code).toBe(1);
    expect(run.stderr).toContain("--log-format takes text or json, not xml");
  });
});
