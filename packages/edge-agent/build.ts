// Builds the agent package: the CLI and the library, each bundled by esbuild
// into one ES module of plain JavaScript (nothing compiles when a device runs
// a command), and the library's type declarations. `npm run pack:agent` then
// makes the tarball.
//
// better-sqlite3, a native addon, stays outside both bundles. The library
// imports zod from its dependencies too, as its types are built on zod's; the
// CLI carries its own copy inside its one file, because loading zod's many
// modules one by one was half of a command's start (0.2 s → 0.16 s here).
import { execFileSync } from "node:child_process";
import { rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";
import pkg from "./package.json" with { type: "json" };

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, "../..");
const dist = join(here, "dist");

/**
 * Builds the package into `dist/` and returns that folder. `types: false`
 * leaves out the type declarations (the tests run the CLI, and skip tsc).
 */
export async function buildAgentPackage({ types = true } = {}): Promise<string> {
  rmSync(dist, { recursive: true, force: true });
  const common = {
    bundle: true,
    platform: "node",
    format: "esm",
    target: "node20",
    legalComments: "none",
    logLevel: "warning",
  } as const;
  await build({
    ...common,
    entryPoints: [join(root, "edge-agent/main.ts")],
    outfile: join(dist, "cli.js"),
    external: ["better-sqlite3"],
    banner: { js: "#!/usr/bin/env node" },
  });
  await build({
    ...common,
    entryPoints: [join(root, "edge-agent/index.ts")],
    outfile: join(dist, "index.js"),
    external: Object.keys(pkg.dependencies),
  });
  if (!types) return dist;
  execFileSync(
    process.execPath,
    [join(root, "node_modules/typescript/bin/tsc"), "-p", join(here, "tsconfig.types.json")],
    { stdio: "inherit" },
  );
  return dist;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  console.log(`built ${pkg.name}@${pkg.version} in ${await buildAgentPackage()}`);
}
