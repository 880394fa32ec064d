// The agent as a device gets it: the package built and packed by
// `npm run pack:agent`, installed from its tarball with `npm install -g` into
// an empty folder outside this repository, then used against the local cloud.
// `npm run test:package` (installing compiles better-sqlite3: over a minute).
import { execFile } from "node:child_process";
import { mkdir, readdir, readFile, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { packAgent } from "../packages/edge-agent/pack.ts";
import pkg from "../packages/edge-agent/package.json" with { type: "json" };
import { startTestCloud, type TestCloud } from "./support/cloud.ts";

const run = promisify(execFile);

describe("the agent package, installed from its tarball", () => {
  let t: TestCloud;
  let prefix: string;
  let site: string;
  let installed: string;

  /** Runs the installed `edge-agent` in the site folder, as a field device would. */
  const agent = async (...args: string[]) => {
    try {
      const { stdout, stderr } = await run(join(prefix, "bin/edge-agent"), args, {
        cwd: site,
        env: { PATH: process.env.PATH, HOME: site },
      });
      return { code: 0, stdout, stderr };
    } catch (error) {
      const e = error as { code: number; stdout: string; stderr: string };
      return { code: e.code, stdout: e.stdout, stderr: e.stderr };
    }
  };

  beforeAll(async () => {
    t = await startTestCloud("pglite");
    const tarball = await packAgent(join(t.dir, "pack"));
    prefix = join(t.dir, "device");
    site = join(t.dir, "site");
    await mkdir(site, { recursive: true });
    await run("npm", ["install", "-g", "--prefix", prefix, "--no-audit", "--no-fund", tarball], {
      cwd: site,
    });
    installed = join(prefix, "lib/node_modules", pkg.name);
  }, 600_000);
  afterAll(() => t?.stop());

  it("carries built JavaScript and its runtime dependencies only", async () => {
    const files = await readdir(installed, { recursive: true });
    const own = files.filter((f) => !f.startsWith("node_modules"));
    expect(own).toEqual(expect.arrayContaining(["dist/cli.js", "dist/index.js", "package.json"]));
    expect(own.filter((f) => /\.(ts|mts|cts)$/.test(f) && !f.endsWith(".d.ts"))).toEqual([]);
    const dependencies = (await readdir(join(installed, "node_modules"))).filter(
      (d) => !d.startsWith("."),
    );
    expect(dependencies).toEqual(expect.arrayContaining(["better-sqlite3", "zod"]));
    for (const heavy of ["@aws-sdk", "@electric-sql", "fauxqs", "pg", "tsx", "typescript"]) {
      expect(dependencies).not.toContain(heavy);
    }
  });

  it("answers --version and help, and runs init, create and sync against the cloud", async () => {
    expect((await agent("--version")).stdout.trim()).toBe(`edge-agent ${pkg.version}`);
    expect((await agent("help", "sync")).stdout).toMatch(/usage: edge-agent .*sync \[--json\]/);

    const device = await t.createDevice("installed from the tarball");
    const init = await agent(
      "init",
      "--api",
      t.cloud.url,
      "--client-id",
      device.clientId,
      "--client-secret",
      device.clientSecret,
    );
    expect(init).toMatchObject({ code: 0 });
    const created = await agent("create", "--set", "title=Installed by npm", "--set", "severity=2");
    expect(created.code).toBe(0);
    const id = created.stdout.trim();

    // The consumer applies asynchronously: sync until the change is acknowledged.
    const deadline = Date.now() + 60_000;
    let status: { applied: number; pending: number };
    do {
      expect((await agent("sync", "--json")).code).toBe(0);
      status = JSON.parse((await agent("status", "--json")).stdout);
    } while (status.applied < 1 && Date.now() < deadline);
    expect(status).toMatchObject({ applied: 1, pending: 0 });

    const token = await t.adminToken();
    const report = await t.api(`/v1/reports/${id}`, { token });
    expect(report.body.fields).toEqual({ title: "Installed by npm", severity: 2 });
    const devices = await t.api("/v1/devices", { token });
    expect(devices.body.items.find((d: { id: string }) => d.id === device.id)).toMatchObject({
      agentVersion: pkg.version,
      platform: `${process.platform}-${process.arch}; node/${process.versions.node}`,
    });
  });

  it("serves apps that embed it: the library imports by its name, with type declarations", async () => {
    const app = join(t.dir, "app");
    await mkdir(join(app, "node_modules/@edge-sync"), { recursive: true });
    await symlink(installed, join(app, "node_modules", pkg.name));
    await writeFile(join(app, "package.json"), '{"type":"module","private":true}');
    await writeFile(
      join(app, "main.ts"),
      [
        'import { EdgeAgent, type Report } from "@edge-sync/edge-agent";',
        "const { API, CLIENT_ID, CLIENT_SECRET } = process.env;",
        'const agent = EdgeAgent.open("app.db");',
        "await agent.init(API!, CLIENT_ID!, CLIENT_SECRET!);",
        'const report: Report = agent.create({ title: "From an app" });',
        "const { pushed } = await agent.syncOnce();",
        "console.log(JSON.stringify({ id: report.id, pushed }));",
        "agent.close();",
      ].join("\n"),
    );
    await writeFile(
      join(app, "tsconfig.json"),
      JSON.stringify({
        compilerOptions: {
          module: "NodeNext",
          strict: true,
          noEmit: true,
          target: "ES2023",
          types: ["node"],
          typeRoots: [join(import.meta.dirname, "../node_modules/@types")],
          // Only the declarations of the package itself are checked.
          skipLibCheck: false,
        },
        files: ["main.ts"],
      }),
    );
    const tsc = join(import.meta.dirname, "../node_modules/typescript/bin/tsc");
    await expect(
      run(process.execPath, [tsc, "-p", app], { cwd: app }).catch((e) => e.stdout),
    ).resolves.toMatchObject({ stdout: "" });

    // The same program, as the JavaScript an app would ship.
    const js = (await readFile(join(app, "main.ts"), "utf8"))
      .replace(", type Report", "")
      .replace(": Report", "")
      .replaceAll("!", "");
    await writeFile(join(app, "main.mjs"), js);
    const device = await t.createDevice("an app embedding the agent");
    const { stdout } = await run(process.execPath, ["main.mjs"], {
      cwd: app,
      env: { API: t.cloud.url, CLIENT_ID: device.clientId, CLIENT_SECRET: device.clientSecret },
    });
    // Pushed: the cloud took the app's report into its queue.
    expect(JSON.parse(stdout)).toMatchObject({ id: expect.any(String), pushed: 1 });
  });
});
