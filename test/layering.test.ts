import { execFile } from "node:child_process";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const run = promisify(execFile);
const BIOME = join(import.meta.dirname, "..", "node_modules", ".bin", "biome");

/**
 * The import rules of DESIGN.md's layout, as `npm run check` enforces them:
 * the repository's own biome.json, run on a tree with one file that imports
 * across a forbidden arrow.
 */
describe("the import rules (npm run check)", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "edge-sync-layering-"));
    const config = JSON.parse(
      await readFile(join(import.meta.dirname, "..", "biome.json"), "utf8"),
    );
    delete config.$schema;
    config.vcs = { enabled: false };
    await writeFile(join(dir, "biome.json"), JSON.stringify(config));
    const stub = "export const value = 1;\n";
    for (const file of [
      "core/hlc.ts",
      "edge-agent/agent.ts",
      "functions/routes.ts",
      "functions/http/middleware.ts",
      "functions/app/pull.ts",
      "functions/adapters/db.ts",
      "local/cloud.ts",
    ]) {
      await mkdir(dirname(join(dir, file)), { recursive: true });
      await writeFile(join(dir, file), stub);
    }
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  async function lint(file: string, from: string): Promise<{ ok: boolean; output: string }> {
    await mkdir(dirname(join(dir, file)), { recursive: true });
    await writeFile(
      join(dir, file),
      `import { value } from "${from}";\n\nexport const copy = value;\n`,
    );
    try {
      const { stdout, stderr } = await run(BIOME, ["lint", file], { cwd: dir });
      return { ok: true, output: stdout + stderr };
    } catch (error) {
      const { stdout, stderr } = error as { stdout: string; stderr: string };
      return { ok: false, output: stdout + stderr };
    } finally {
      await rm(join(dir, file));
    }
  }

  it.each([
    ["functions/ importing edge-agent/", "functions/ingest.ts", "../edge-agent/agent.ts"],
    ["functions/ importing local/", "functions/app/x.ts", "../../local/cloud.ts"],
    ["edge-agent/ importing functions/", "edge-agent/client.ts", "../functions/adapters/db.ts"],
    ["core/ importing functions/", "core/merge.ts", "../functions/routes.ts"],
    ["a use case importing HTTP glue", "functions/app/read.ts", "../http/middleware.ts"],
    ["an adapter importing a use case", "functions/adapters/queue.ts", "../app/pull.ts"],
    ["a use case importing edge-agent/", "functions/app/read.ts", "../../edge-agent/agent.ts"],
    ["core/ importing a database driver", "core/merge.ts", "pg"],
    ["infra/ importing runtime code", "infra/stacks/api.ts", "../../functions/adapters/db.ts"],
  ])("fails on %s", async (_, file, from) => {
    const result = await lint(file, from);
    expect(result.ok).toBe(false);
    expect(result.output).toContain("noRestrictedImports");
  });

  it.each([
    ["functions/ importing core/", "functions/ingest.ts", "../core/hlc.ts"],
    ["a handler importing a use case", "functions/sync.ts", "./app/pull.ts"],
    ["a use case importing a port's adapter", "functions/app/read.ts", "../adapters/db.ts"],
    ["edge-agent/ importing core/", "edge-agent/client.ts", "../core/hlc.ts"],
    ["local/ importing functions/", "local/main.ts", "../functions/adapters/db.ts"],
    ["infra/ importing the route table", "infra/stacks/api.ts", "../../functions/routes.ts"],
    ["a test importing across folders", "functions/ingest.test.ts", "../local/cloud.ts"],
  ])("allows %s", async (_, file, from) => {
    const result = await lint(file, from);
    expect(result.output).not.toContain("noRestrictedImports");
    expect(result.ok).toBe(true);
  });
});
