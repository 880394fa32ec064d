import { readFile } from "node:fs/promises";
import type { Db } from "../functions/adapters/db/db.ts";
import { listDevices } from "../functions/app/fleet.ts";
import { pull } from "../functions/app/pull.ts";
import { getReport, listReports, projectCounts, type ReportQuery } from "../functions/app/read.ts";
import { applySide, Workload } from "./apply.ts";
import { benchDb, seedReports, timed } from "./db.ts";
import type { BenchResult } from "./main.ts";

/** Reports in the project read (`BENCH_READ_REPORTS`). */
const REPORTS = Number(process.env.BENCH_READ_REPORTS ?? 100_000);
const RUNS = 60;
/** The ceiling for every read route's p95. */
const P95_MS = 20;

/**
 * The read routes' use cases on a project of 100,000 reports, first never
 * analysed (a new, restored or bulk-loaded database), then analysed: the
 * p95 of each beside that of reading one report by id (the anchor), and the
 * database CPU a new device's first sync costs beside reading the same
 * reports in one statement. The counts the dashboard polls (status,
 * devices) are read with ten new reports applied between reads, as a
 * dashboard polls a project that syncs.
 */
export async function benchRead(): Promise<BenchResult[]> {
  const bench = await benchDb(1);
  try {
    const devices = await bench.devices(2);
    const [device] = devices;
    await seedReports(bench, device, REPORTS);
    const { projectId } = device;
    // Ten new reports by the project's devices, as the consumer applies a batch.
    const workload = new Workload(devices);
    const applyNew = () =>
      applySide.write(bench.db, workload.seeding(10)[0]!, new Date().toISOString());
    const ids = (
      await bench.db.query<{ id: string }>(
        "select id from reports where project_id = $1 order by random() limit $2",
        [projectId, RUNS],
      )
    ).map((r) => r.id);
    const span = REPORTS * 60_000;
    const reads: Record<string, (i: number) => Partial<ReportQuery>> = {
      "first page": () => ({}),
      "q matching 1 in 500": (i) => ({ q: `lot ${String(i % 500).padStart(3, "0")}` }),
      // Too common for the newest rows to fill a page, too rare to skip the index.
      "q matching 1 in 50": (i) => ({ q: `lot 0${i % 10}` }),
      "q matching every report": () => ({ q: "pump" }),
      "q matching none": (i) => ({ q: `absent ${i}` }),
      "updated within 1% of the span": (i) => {
        const from = Date.now() - span + ((i * 7919) % 99) * (span / 100);
        return {
          updatedAfter: new Date(from).toISOString(),
          updatedBefore: new Date(from + span / 100).toISOString(),
        };
      },
    };
    const results: BenchResult[] = [];
    for (const statistics of ["never analysed", "analysed"]) {
      if (statistics === "analysed") await bench.db.exec("analyze");
      const anchor = await p95((i) => getReport(bench.db, projectId, ids[i % ids.length]!));
      for (const [name, query] of Object.entries(reads)) {
        const value = await p95((i) =>
          listReports(bench.db, projectId, { deleted: "false", limit: 50, ...query(i) }),
        );
        results.push({
          name: `GET /v1/reports, ${name}, ${statistics}`,
          value: Number(value.toFixed(1)),
          unit: "ms p95",
          baseline: Number(anchor.toFixed(1)),
          ratio: anchor / value,
          max: P95_MS,
        });
      }
      const polled: Record<string, () => Promise<unknown>> = {
        "GET /v1/status": () => projectCounts(bench.db, projectId),
        "GET /v1/devices": () => listDevices(bench.db, projectId, Date.now()),
      };
      for (const [name, read] of Object.entries(polled)) {
        const value = await p95(read, applyNew);
        results.push({
          name: `${name}, ten new reports between reads, ${statistics}`,
          value: Number(value.toFixed(1)),
          unit: "ms p95",
          baseline: Number(anchor.toFixed(1)),
          ratio: anchor / value,
          max: P95_MS,
        });
      }
      results.push(await firstSync(bench.db, projectId, device.id, statistics));
    }
    return results;
  } finally {
    await bench.drop();
  }
}

/** The p95 of `read`, after one untimed read; `between` runs untimed before each. */
async function p95(
  read: (i: number) => Promise<unknown>,
  between?: () => Promise<unknown>,
): Promise<number> {
  await read(0);
  const times: number[] = [];
  for (let i = 1; i <= RUNS; i++) {
    await between?.();
    times.push(await timed(() => read(i)));
  }
  times.sort((a, b) => a - b);
  return times[Math.ceil(times.length * 0.95) - 1]!;
}

/**
 * The CPU PostgreSQL spends on a new device's first sync (every page of the
 * pull, 1,000 reports each), beside reading the same reports in one
 * statement: the backend's own user and system time, from /proc.
 */
async function firstSync(
  db: Db,
  projectId: string,
  deviceId: string,
  statistics: string,
): Promise<BenchResult> {
  const [{ pid }] = (await db.query<{ pid: number }>("select pg_backend_pid() as pid")) as [
    { pid: number },
  ];
  const cpu = async () => {
    const fields = (await readFile(`/proc/${pid}/stat`, "utf8")).split(") ")[1]!.split(" ");
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100; // utime + stime, in ms at 100 Hz
  };
  const before = await cpu();
  let cursor: string | undefined;
  let pulled = 0;
  for (;;) {
    const page = await pull(db, { projectId, deviceId, cursor, limit: 1000 });
    pulled += page.reports.length;
    cursor = page.cursor;
    if (!page.hasMore) break;
  }
  const pullMs = await cpu().then((after) => after - before);
  const anchorBefore = await cpu();
  await db.query("select * from reports where project_id = $1", [projectId]);
  const anchorMs = await cpu().then((after) => after - anchorBefore);
  return {
    name: `first sync of ${pulled.toLocaleString("en")} reports, database CPU, ${statistics}`,
    value: pullMs,
    unit: "ms",
    baseline: anchorMs,
    ratio: anchorMs / pullMs,
    max: (3000 * REPORTS) / 100_000,
  };
}
