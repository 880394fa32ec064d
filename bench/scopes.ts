import { setDeviceScopes } from "../functions/app/identity.ts";
import { ORDERED_INDEX_SCANS_ONLY, pull } from "../functions/app/pull.ts";
import { SCOPED_ROWS_SQL, scopedRowsParams } from "../functions/app/pull-scopes.ts";
import { type BenchDb, benchDb, seedReports, timed } from "./db.ts";
import type { BenchResult } from "./main.ts";

/** Reports in the large project (`BENCH_SCOPES_REPORTS`), in SCOPES scopes. */
const LARGE = Number(process.env.BENCH_SCOPES_REPORTS ?? 1_000_000);
const SCOPES = 2000;
/** The scope's reports: what the device receives, and all the small project holds. */
const IN_SCOPE = Math.round(LARGE / SCOPES);
const ROUNDS = Number(process.env.BENCH_SCOPES_ROUNDS ?? 21);

interface Side {
  bench: BenchDb;
  projectId: string;
  deviceId: string;
}

/**
 * Partial sync: a device with one scope pulls its 500 reports from the
 * start (a first sync), in a project of 1,000,000 reports in 2,000 scopes,
 * beside the same pull in a project that holds only those 500 reports (the
 * anchor), each in its own fresh, never-analysed database, taking turns.
 * Also checks that the pull's plan on the large one reads `reports`
 * through indexes only.
 */
export async function benchScopes(): Promise<BenchResult[]> {
  const large = await side(LARGE, SCOPES);
  const small = await side(IN_SCOPE, 1);
  try {
    await indexScansOnly(large);
    const ms: [number[], number[]] = [[], []];
    for (let round = 0; round < ROUNDS; round++) {
      ms[0].push(await timed(() => firstSync(small)));
      ms[1].push(await timed(() => firstSync(large)));
    }
    const median = (values: number[]) => values.sort((a, b) => a - b)[values.length >> 1]!;
    const [anchor, value] = [median(ms[0]), median(ms[1])];
    return [
      {
        name: `scoped first pull of ${IN_SCOPE} reports in a project of ${LARGE.toLocaleString("en")} in ${SCOPES.toLocaleString("en")} scopes, median of ${ROUNDS} (anchor: a project of those ${IN_SCOPE} only)`,
        value: Math.round(value * 10) / 10,
        unit: "ms",
        baseline: Math.round(anchor * 10) / 10,
        ratio: anchor / value,
        target: 0.5,
      },
    ];
  } finally {
    await large.bench.drop();
    await small.bench.drop();
  }
}

/** A fresh database with a project of `reports` reports in `scopes` scopes, and a device of scope `site-0000`. */
async function side(reports: number, scopes: number): Promise<Side> {
  const bench = await benchDb(2);
  const [writer, device] = await bench.devices(2);
  await seedReports(bench, writer, reports, { scopes });
  await setDeviceScopes(bench.db, device.projectId, device.id, ["site-0000"], null);
  return { bench, projectId: device.projectId, deviceId: device.id };
}

/** Every page of the device's pull from the start; throws unless it delivers its scope's reports. */
async function firstSync({ bench, projectId, deviceId }: Side): Promise<void> {
  let cursor: string | undefined;
  let received = 0;
  for (;;) {
    const page = await pull(bench.db, { projectId, deviceId, cursor, limit: 1000 });
    received += page.reports.length;
    cursor = page.cursor;
    if (!page.hasMore) break;
  }
  if (received !== IN_SCOPE) throw new Error(`pulled ${received} of ${IN_SCOPE} reports`);
}

interface PlanNode {
  "Node Type": string;
  "Index Name"?: string;
  "Relation Name"?: string;
  Plans?: PlanNode[];
}

/** Throws unless EXPLAIN of the scoped pull reads `reports` through indexes only. */
async function indexScansOnly({ bench, projectId }: Side): Promise<void> {
  const plan = await bench.db.transaction(async (tx) => {
    const [{ xmin }] = (await tx.query<{ xmin: string }>(
      `select pg_snapshot_xmin(pg_current_snapshot())::text as xmin, ${ORDERED_INDEX_SCANS_ONLY}`,
    )) as [{ xmin: string }];
    const [row] = await tx.query<{ "QUERY PLAN": [{ Plan: PlanNode }] }>(
      `explain (format json) ${SCOPED_ROWS_SQL}`,
      scopedRowsParams(["site-0000"], {
        projectId,
        after: ["0", "00000000-0000-0000-0000-000000000000"],
        xmin,
        limit: 1001,
      }),
    );
    return row!["QUERY PLAN"][0].Plan;
  });
  const all: PlanNode[] = [];
  const walk = (node: PlanNode) => {
    all.push(node);
    for (const child of node.Plans ?? []) walk(child);
  };
  walk(plan);
  const scans = all.filter((n) => n["Relation Name"] !== undefined);
  const described = scans.map(
    (n) => `${n["Node Type"]} on ${n["Relation Name"]} (${n["Index Name"] ?? "no index"})`,
  );
  console.error(`scoped pull plan: ${described.join("; ")}`);
  if (scans.some((n) => !/^Index (Only )?Scan$/.test(n["Node Type"]))) {
    throw new Error(`the scoped pull reads a table without an index: ${described.join("; ")}`);
  }
}
