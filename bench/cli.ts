import { execFileSync } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { EdgeAgent } from "../edge-agent/agent.ts";
import type { BenchResult } from "./main.ts";

const RUNS = 10;
const BIN = fileURLToPath(new URL("../edge-agent/bin.js", import.meta.url));

/**
 * The CLI's cold start as a field device pays it: `edge-agent status` on an
 * existing database, a new process each time (median of 10), beside
 * starting Node itself with nothing to run (`node -e 0`), taking turns.
 */
export async function benchCli(): Promise<BenchResult[]> {
  const dir = await mkdtemp(join(tmpdir(), "cli-bench-"));
  try {
    const path = join(dir, "agent.db");
    const agent = EdgeAgent.open(path);
    agent.close();
    const time = (args: string[]) => {
      const started = performance.now();
      execFileSync(process.execPath, args, { env: { ...process.env, EDGE_AGENT_DB: path } });
      return performance.now() - started;
    };
    const status: number[] = [];
    const bare: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      status.push(time([BIN, "status"]));
      bare.push(time(["-e", "0"]));
    }
    const median = (values: number[]) =>
      values.sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
    const value = median(status);
    const baseline = median(bare);
    return [
      {
        name: "edge-agent status, cold start, median of 10 (anchor: node -e 0)",
        value: Math.round(value),
        unit: "ms",
        baseline: Math.round(baseline),
        ratio: baseline / value,
        // At most 2.5 times Node's own start.
        target: 1 / 2.5,
      },
    ];
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
