import { execFileSync } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { EdgeAgent } from "../edge-agent/agent.ts";
import { buildAgentPackage } from "../packages/edge-agent/build.ts";
import type { BenchResult } from "./main.ts";

const RUNS = 10;
/** The CLI as run from a checkout: TypeScript compiled by tsx as it loads. */
const FROM_SOURCE = fileURLToPath(new URL("../edge-agent/bin.js", import.meta.url));

/**
 * The CLI's cold start as a field device pays it: `edge-agent status` on an
 * existing database, a new process each time (median of 10), with the
 * package's built CLI, beside starting Node itself with nothing to run
 * (`node -e 0`), taking turns. The same from a checkout, for comparison.
 */
export async function benchCli(): Promise<BenchResult[]> {
  const dir = await mkdtemp(join(tmpdir(), "cli-bench-"));
  try {
    const built = join(await buildAgentPackage(), "cli.js");
    const path = join(dir, "agent.db");
    const agent = EdgeAgent.open(path);
    agent.close();
    const time = (args: string[]) => {
      const started = performance.now();
      execFileSync(process.execPath, args, { env: { ...process.env, EDGE_AGENT_DB: path } });
      return performance.now() - started;
    };
    const status: number[] = [];
    const fromSource: number[] = [];
    const bare: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      status.push(time([built, "status"]));
      fromSource.push(time([FROM_SOURCE, "status"]));
      bare.push(time(["-e", "0"]));
    }
    const median = (values: number[]) =>
      values.sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
    const baseline = median(bare);
    const row = (name: string, value: number) => ({
      name,
      value: Math.round(value),
      unit: "ms",
      baseline: Math.round(baseline),
      ratio: baseline / value,
    });
    return [
      // At most 2.5 times Node's own start.
      {
        ...row(
          "edge-agent status, installed package, median of 10 (anchor: node -e 0)",
          median(status),
        ),
        target: 1 / 2.5,
      },
      row(
        "edge-agent status, from a checkout (tsx), median of 10 (anchor: node -e 0)",
        median(fromSource),
      ),
    ];
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
