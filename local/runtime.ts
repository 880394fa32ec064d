import { readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";

/** What a running local cloud tells other local tools (`npm run invoke`). */
export interface Runtime {
  pid: number;
  apiUrl: string;
  sqsEndpoint: string;
  queueUrl: string;
  dlqUrl: string;
}

const path = (dataDir: string) => join(dataDir, "runtime.json");

export async function writeRuntime(dataDir: string, runtime: Runtime): Promise<void> {
  await writeFile(path(dataDir), `${JSON.stringify(runtime, null, 2)}\n`, { mode: 0o600 });
}

export async function removeRuntime(dataDir: string): Promise<void> {
  await rm(path(dataDir), { force: true });
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** The running cloud's runtime file, with whether its process is still alive. */
export async function readRuntime(
  dataDir: string,
): Promise<(Runtime & { alive: boolean }) | undefined> {
  try {
    const runtime = JSON.parse(await readFile(path(dataDir), "utf8")) as Runtime;
    return { ...runtime, alive: isAlive(runtime.pid) };
  } catch {
    return undefined;
  }
}
