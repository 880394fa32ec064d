import { spawn } from "node:child_process";
import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";

const READY = /edge-sync local cloud ready at (http:\/\/127\.0\.0\.1:\d+)/;

describe("npm start (the local cloud as a process)", () => {
  const dirs: string[] = [];
  afterAll(async () => {
    for (const dir of dirs) await rm(dir, { recursive: true, force: true });
  });

  it("prints the ready line, answers health, seeds credentials, and exits 0 on Ctrl-C", async () => {
    const dir = await mkdtemp(join(tmpdir(), "edge-sync-start-"));
    dirs.push(dir);
    const child = spawn(process.execPath, ["--import", "tsx", "local/main.ts"], {
      env: { ...process.env, PORT: "0", DATA_DIR: dir, DATABASE_URL: "" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let output = "";
    // A bound on a hang, not a speed claim: a loaded machine takes its time.
    const url = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`not ready in 120 s:\n${output}`)), 120_000);
      const onData = (chunk: Buffer) => {
        output += chunk.toString();
        const match = READY.exec(output);
        if (match) {
          clearTimeout(timer);
          resolve(match[1]!);
        }
      };
      child.stdout.on("data", onData);
      child.stderr.on("data", onData);
      child.once("exit", (code) => reject(new Error(`exited ${code} before ready:\n${output}`)));
    });
    const health = await fetch(`${url}/v1/health`);
    expect(health.status).toBe(200);
    expect(await health.json()).toEqual({ status: "ok", checks: { db: "ok", queue: "ok" } });

    const path = join(dir, "credentials.json");
    const credentials = JSON.parse(await readFile(path, "utf8"));
    expect(credentials).toMatchObject({
      apiUrl: url,
      operator: { clientId: expect.any(String), clientSecret: expect.any(String) },
      projects: {
        demo: {
          id: expect.any(String),
          admin: { clientId: expect.any(String), clientSecret: expect.any(String) },
        },
      },
    });
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    expect((await stat(join(dir, "keys.json"))).mode & 0o777).toBe(0o600);

    // The demo project's activity log begins with its creation, as any project's does.
    const { clientId, clientSecret } = credentials.projects.demo.admin;
    const token = await fetch(`${url}/v1/oauth/token`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        grant_type: "client_credentials",
        client_id: clientId,
        client_secret: clientSecret,
      }),
    });
    const { access_token } = await token.json();
    const read = (route: string) =>
      fetch(`${url}${route}`, { headers: { authorization: `Bearer ${access_token}` } }).then((r) =>
        r.json(),
      );
    const { items } = await read("/v1/activity");
    expect(items).toMatchObject([
      {
        action: "project.create",
        actor: { type: "operator" },
        targetId: credentials.projects.demo.id,
        details: { name: "demo" },
      },
    ]);
    expect((await read("/v1/audit/verify")).activity).toEqual({ ok: true, checked: 1 });

    const exited = new Promise<number | null>((resolve) => child.once("exit", resolve));
    child.kill("SIGINT");
    expect(await exited).toBe(0);
  }, 180_000);
});
