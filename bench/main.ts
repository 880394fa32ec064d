import { writeFile } from "node:fs/promises";
import { cpus, totalmem } from "node:os";
import { benchApply } from "./apply.ts";
import { benchCli } from "./cli.ts";
import { benchE2e } from "./e2e.ts";
import { benchEdge } from "./edge.ts";
import { benchFirstSync } from "./first-sync.ts";
import { benchRead } from "./read.ts";
import { benchScale } from "./scale.ts";
import { benchSchema } from "./schema.ts";
import { benchScopes } from "./scopes.ts";

export interface BenchResult {
  name: string;
  value: number;
  unit: string;
  /** The anchor the value is compared with, in the same unit. */
  baseline: number;
  ratio: number;
  /** The ratio the issue asks for, if it asks for one. */
  target?: number;
  /** The most the value may be, where the issue sets a ceiling instead (latencies). */
  max?: number;
  /** The least the value may be, where the issue sets a floor instead (throughput). */
  min?: number;
}

process.env.POWERTOOLS_LOG_LEVEL ??= "SILENT";

const suites: Record<string, () => Promise<BenchResult[]>> = {
  apply: benchApply,
  cli: benchCli,
  edge: benchEdge,
  e2e: benchE2e,
  "first-sync": benchFirstSync,
  read: benchRead,
  scale: benchScale,
  schema: benchSchema,
  scopes: benchScopes,
};
const only = process.argv.slice(2);
const results: BenchResult[] = [];
for (const [name, run] of Object.entries(suites)) {
  if (only.length && !only.includes(name)) continue;
  results.push(...(await run()));
}

const machine = `${cpus().length} × ${cpus()[0]?.model.trim()}, ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.version}`;
console.log(`edge-sync benchmarks on ${machine}\n`);
const rows = results.map((r) => [
  r.name,
  `${r.value.toLocaleString("en")} ${r.unit}`,
  `${r.baseline.toLocaleString("en")} ${r.unit}`,
  `${(r.ratio * 100).toFixed(0)}%`,
  targetOf(r),
  verdictOf(r),
]);
function targetOf(r: BenchResult): string {
  if (r.max !== undefined) return `≤ ${r.max.toLocaleString("en")} ${r.unit}`;
  if (r.min !== undefined) return `≥ ${r.min.toLocaleString("en")} ${r.unit}`;
  return r.target === undefined ? "" : `${(r.target * 100).toFixed(0)}%`;
}

function verdictOf(r: BenchResult): string {
  if (r.max !== undefined) return r.value <= r.max ? "ok" : "ABOVE";
  if (r.min !== undefined) return r.value >= r.min ? "ok" : "BELOW";
  if (r.target === undefined) return "";
  return r.ratio >= r.target ? "ok" : "BELOW";
}

const header = ["benchmark", "value", "anchor", "ratio", "target", ""];
const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
for (const row of [header, ...rows])
  console.log(row.map((c, i) => c.padEnd(widths[i]!)).join("  "));
await writeFile(
  new URL("./results.json", import.meta.url),
  `${JSON.stringify({ at: new Date().toISOString(), machine, results }, null, 2)}\n`,
);
process.exit(0);
