import { execFile } from "node:child_process";
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, describe, expect, it } from "vitest";

const run = promisify(execFile);

describe("npm run invoke (a handler replayed on a saved event)", () => {
  const dirs: string[] = [];
  afterAll(async () => {
    for (const dir of dirs) await rm(dir, { recursive: true, force: true });
  });

  it("runs the consumer on the sample batch in a scratch cloud, leaving the local cloud's data alone", async () => {
    const dataDir = await mkdtemp(join(tmpdir(), "edge-sync-data-"));
    dirs.push(dataDir);
    const { stdout, stderr } = await run(
      process.execPath,
      ["--import", "tsx", "local/invoke.ts", "consume", "events/sqs/changes-fifo.json"],
      // Even with a real database named, the replay does not touch it.
      {
        env: { ...process.env, DATA_DIR: dataDir, DATABASE_URL: "postgres://nobody@127.0.0.1:1/x" },
      },
    );
    expect(JSON.parse(stdout)).toEqual({ batchItemFailures: [] });
    const scratch = /scratch cloud in (\S+)/.exec(stderr)![1]!;
    expect(scratch.startsWith(dataDir)).toBe(false);
    expect(await readdir(dataDir)).toEqual([]);
    await expect(readdir(scratch)).rejects.toMatchObject({ code: "ENOENT" });
  }, 180_000);
});
