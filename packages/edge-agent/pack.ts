// `npm run pack:agent [DIR]`: builds the agent package and packs it into a
// tarball a device installs with `npm install -g FILE` (DIR: .local).
import { execFile } from "node:child_process";
import { mkdir } from "node:fs/promises";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { buildAgentPackage } from "./build.ts";

const here = fileURLToPath(new URL(".", import.meta.url));

/** Builds and packs the agent into `dir`; returns the tarball's path. */
export async function packAgent(dir: string): Promise<string> {
  await buildAgentPackage();
  await mkdir(dir, { recursive: true });
  const { stdout } = await promisify(execFile)(
    "npm",
    ["pack", "--json", "--pack-destination", resolve(dir)],
    { cwd: here },
  );
  const [{ filename }] = JSON.parse(stdout) as [{ filename: string }];
  return join(resolve(dir), filename);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  console.log(await packAgent(process.argv[2] ?? join(here, "../../.local")));
}
