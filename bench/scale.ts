import { applySide, result, Workload } from "./apply.ts";
import { type BenchDb, benchDb, seedReports, timed } from "./db.ts";
import type { BenchResult } from "./main.ts";

/** Reports in the large database (`BENCH_SCALE_REPORTS`). */
const LARGE = Number(process.env.BENCH_SCALE_REPORTS ?? 1_000_000);
const SMALL = 1000;
/** Changes into a fresh database before its cost is measured again. */
const GROWTH = Number(process.env.BENCH_SCALE_GROWTH ?? 20_000);
/** Changes per measurement window. */
const WINDOW = 1000;
const BATCH = 10;

/**
 * Whether apply costs the same per change whatever the database holds:
 * (1) on a fresh, never-analysed database, the cost of the first 1,000
 * changes beside that of 1,000 changes after 20,000 more; (2) the cost per
 * change into a project of 1,000 reports beside one of 1,000,000, the two
 * taking turns batch by batch. Half the changes create reports, half edit
 * existing ones. The ratios are cost small / cost large: 100% is flat.
 */
export async function benchScale(): Promise<BenchResult[]> {
  return [await growth(), await size()];
}

async function growth(): Promise<BenchResult> {
  const bench = await benchDb(2);
  try {
    const workload = new Workload(await bench.devices(2), []);
    const window = async () => {
      let ms = 0;
      for (const work of workload.mixed(WINDOW, BATCH)) {
        ms += await timed(() => applySide.write(bench.db, work, new Date().toISOString()));
      }
      return ms / WINDOW;
    };
    const first = await window();
    for (const work of workload.mixed(GROWTH, BATCH)) {
      await applySide.write(bench.db, work, new Date().toISOString());
    }
    const later = await window();
    return result(
      `apply cost per change, first ${WINDOW} vs after ${GROWTH.toLocaleString("en")} more, fresh database`,
      1000 / later,
      1000 / first,
      1 / 1.2,
      "changes/s",
    );
  } finally {
    await bench.drop();
  }
}

async function size(): Promise<BenchResult> {
  const small = await benchDb(2);
  const large = await benchDb(2);
  try {
    const workloads = [await seeded(small, SMALL), await seeded(large, LARGE)] as const;
    const ms = [0, 0];
    const rounds = workloads.map((w) => w.mixed(WINDOW * 2, BATCH));
    for (let i = 0; i < rounds[0]!.length; i++) {
      for (const k of i % 2 ? [1, 0] : [0, 1]) {
        const bench = k === 0 ? small : large;
        ms[k]! += await timed(() =>
          applySide.write(bench.db, rounds[k]![i]!, new Date().toISOString()),
        );
      }
    }
    return result(
      `apply cost per change, ${SMALL.toLocaleString("en")} vs ${LARGE.toLocaleString("en")} reports`,
      (WINDOW * 2 * 1000) / ms[1]!,
      (WINDOW * 2 * 1000) / ms[0]!,
      1 / 1.2,
      "changes/s",
    );
  } finally {
    await small.drop();
    await large.drop();
  }
}

/** A project of `reports` reports, and a workload whose edits go to 2,000 of them. */
async function seeded(bench: BenchDb, reports: number): Promise<Workload> {
  const devices = await bench.devices(2);
  await seedReports(bench, devices[0], reports);
  const pool = await bench.db.query<{ id: string }>(
    "select id from reports where project_id = $1 order by random() limit 2000",
    [devices[0].projectId],
  );
  return new Workload(
    devices,
    pool.map((r) => r.id),
  );
}
