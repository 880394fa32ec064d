import { rawSide, Workload } from "./apply.ts";
import { type BenchDb, benchDb, timed } from "./db.ts";
import type { BenchResult } from "./main.ts";

/** Changes per variant (`BENCH_SCHEMA_CHANGES`). */
const CHANGES = Number(process.env.BENCH_SCHEMA_CHANGES ?? 3000);
/** The SQS FIFO maximum, and the size where the schema weighs most. */
const BATCHES = [10, 100];

/**
 * What each index, generated column and foreign key on the write path
 * costs: anchor (a)'s writes (new reports and edits, batches of 10 and of
 * 100) into the full schema beside the same writes into the schema without
 * that one part, or without all of them, taking turns batch by batch. The
 * value is the write rate with the part; the baseline the rate without;
 * the ratio, full over without, is what the part leaves of it.
 */
export async function benchSchema(): Promise<BenchResult[]> {
  const results: BenchResult[] = [];
  const variants = { ...PARTS, "every part above": Object.values(PARTS).join(";\n") };
  for (const batch of BATCHES) {
    for (const [part, ddl] of Object.entries(variants)) {
      results.push(await measure(`writes with ${part}, batch ${batch}`, ddl, batch));
    }
  }
  return results;
}

/** The full schema taking turns with the one `ddl` changes. */
async function measure(name: string, ddl: string, batch: number): Promise<BenchResult> {
  const full = await benchDb(1);
  const without = await benchDb(1);
  try {
    await without.db.exec(ddl);
    const sides = [await seeded(full), await seeded(without)] as const;
    const rounds = sides.map(({ workload }) => workload.mixed(CHANGES, batch));
    const ms = [0, 0];
    for (let i = 0; i < rounds[0]!.length; i++) {
      for (const k of i % 2 ? [1, 0] : [0, 1]) {
        ms[k]! += await timed(() =>
          rawSide.write(sides[k]!.bench.db, rounds[k]![i]!, new Date().toISOString()),
        );
      }
    }
    return {
      name,
      value: Math.round((CHANGES / ms[0]!) * 1000),
      unit: "changes/s",
      baseline: Math.round((CHANGES / ms[1]!) * 1000),
      ratio: ms[1]! / ms[0]!,
    };
  } finally {
    await full.drop();
    await without.drop();
  }
}

/** Each part, and how to take it away. */
const PARTS: Record<string, string> = {
  "reports_search (generated column and its project and trigram index)":
    "alter table reports drop column search",
  reports_listing: "drop index reports_listing",
  reports_updated: "drop index reports_updated",
  reports_pull: "drop index reports_pull",
  "reports → projects foreign key": "alter table reports drop constraint reports_project_id_fkey",
  "audit_change (primary key)": "alter table audit_log drop constraint audit_change",
  "audit_chain_start (each chain's first entry)": "drop index audit_chain_start",
  audit_actor_pull: "drop index audit_actor_pull",
  audit_report: "drop index audit_report",
  audit_project_seq: "drop index audit_project_seq",
  "audit_log → projects foreign key":
    "alter table audit_log drop constraint audit_log_project_id_fkey",
};

async function seeded(bench: BenchDb) {
  const workload = new Workload(await bench.devices(2), []);
  for (const work of workload.seeding(1000)) {
    await rawSide.write(bench.db, work, new Date().toISOString());
    workload.adopt(work);
  }
  return { bench, workload };
}
