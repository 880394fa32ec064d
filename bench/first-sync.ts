import { execFile } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { openStore } from "../edge-agent/store.ts";
import { REPORT_COLUMNS, type ReportRow } from "../functions/app/rows.ts";
import { startLocalCloud } from "../local/cloud.ts";
import { provision } from "../local/provision.ts";
import { buildAgentPackage } from "../packages/edge-agent/build.ts";
import { benchDb, seedReports } from "./db.ts";
import type { BenchResult } from "./main.ts";

/** Reports a new device receives (`BENCH_FIRST_SYNC_REPORTS`). */
const REPORTS = Number(process.env.BENCH_FIRST_SYNC_REPORTS ?? 100_000);
const RUNS = 3;
/** The ceiling for the agent's peak memory. */
const MAX_RSS_MIB = 300;

/**
 * The agent's part, in a process of its own as on a device: the built
 * package's library, a first sync against the cloud, its time and its peak
 * resident memory.
 */
const AGENT = `
const { PACKAGE, DB, API, CLIENT_ID, CLIENT_SECRET } = process.env;
const { EdgeAgent } = await import(PACKAGE);
const agent = EdgeAgent.open(DB);
await agent.init(API, CLIENT_ID, CLIENT_SECRET);
const started = performance.now();
const summary = await agent.syncOnce();
const ms = performance.now() - started;
agent.close();
console.log(JSON.stringify({ ms, reports: summary.pulledReports, maxRssKiB: process.resourceUsage().maxRSS }));
`;

interface AgentRun {
  ms: number;
  reports: number;
  maxRssKiB: number;
}

const median = (values: number[]) => values.sort((a, b) => a - b)[Math.floor(values.length / 2)]!;

/**
 * A new device's first sync of a project of 100,000 reports: the agent
 * (built package, its own process) pulling through the local cloud's HTTP
 * API on PostgreSQL, beside the anchor, reading the same rows with one
 * `SELECT` and inserting them into the agent's SQLite table in one
 * transaction, in this process.
 */
export async function benchFirstSync(): Promise<BenchResult[]> {
  const bench = await benchDb(4);
  const dir = await mkdtemp(join(tmpdir(), "edge-sync-first-sync-"));
  const cloud = await startLocalCloud({ db: bench.db, dataDir: join(dir, "cloud"), port: 0 });
  try {
    const { project, devices } = await provision(cloud.url, cloud.credentials.operator, {
      project: "first sync",
      devices: ["new tablet", "writer"],
    });
    const [tablet, writer] = devices as [(typeof devices)[0], (typeof devices)[0]];
    await seedReports(bench, { id: writer.id, projectId: project.id }, REPORTS);

    // Three of each, taking turns; the medians are compared.
    const built = join(await buildAgentPackage(), "index.js");
    const anchors: number[] = [];
    const agents: AgentRun[] = [];
    for (let run = 1; run <= RUNS; run++) {
      anchors.push(await anchor(bench.db, project.id, join(dir, `anchor-${run}.db`)));
      const { stdout } = await promisify(execFile)(
        process.execPath,
        [
          ...(process.env.BENCH_AGENT_NODE_OPTIONS?.split(" ") ?? []),
          "--input-type=module",
          "-e",
          AGENT,
        ],
        {
          env: {
            ...process.env,
            PACKAGE: built,
            DB: join(dir, `tablet-${run}.db`),
            API: cloud.url,
            CLIENT_ID: tablet.clientId,
            CLIENT_SECRET: tablet.clientSecret,
          },
        },
      );
      const agent = JSON.parse(stdout) as AgentRun;
      if (agent.reports !== REPORTS) throw new Error(`pulled ${agent.reports} of ${REPORTS}`);
      agents.push(agent);
    }
    const anchorMs = median(anchors);
    const agent = {
      ms: median(agents.map((a) => a.ms)),
      maxRssKiB: Math.max(...agents.map((a) => a.maxRssKiB)),
    };
    const rate = (ms: number) => Math.round(REPORTS / (ms / 1000));
    const rssMiB = Math.round(agent.maxRssKiB / 1024);
    return [
      {
        name: `first sync of ${REPORTS.toLocaleString("en")} reports, median of 3 (anchor: one SELECT into one SQLite transaction)`,
        value: rate(agent.ms),
        unit: "reports/s",
        baseline: rate(anchorMs),
        ratio: anchorMs / agent.ms,
        target: 0.3,
      },
      {
        name: `first sync of ${REPORTS.toLocaleString("en")} reports, agent peak memory, highest of 3 (anchor: the ceiling)`,
        value: rssMiB,
        unit: "MiB",
        baseline: MAX_RSS_MIB,
        ratio: MAX_RSS_MIB / rssMiB,
        max: MAX_RSS_MIB,
      },
    ];
  } finally {
    await cloud.stop();
    await bench.drop();
    await rm(dir, { recursive: true, force: true });
  }
}

/** The same reports read in one statement and written in one SQLite transaction. */
async function anchor(
  db: Awaited<ReturnType<typeof benchDb>>["db"],
  projectId: string,
  path: string,
): Promise<number> {
  const started = performance.now();
  const rows = await db.query<ReportRow>(
    `select ${REPORT_COLUMNS} from reports where project_id = $1`,
    [projectId],
  );
  const sqlite = openStore(path);
  const insert = sqlite.prepare(
    `insert into reports (id, fields, clocks, deleted_hlc, version, created_at, updated_at, created_by, updated_by)
     values (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
  );
  sqlite.transaction(() => {
    for (const r of rows) {
      insert.run(
        r.id,
        JSON.stringify(r.fields),
        JSON.stringify(r.clocks),
        r.deleted_hlc,
        r.version,
        r.created_at.toISOString(),
        r.updated_at.toISOString(),
        r.created_by,
        r.updated_by,
      );
    }
  })();
  sqlite.close();
  return performance.now() - started;
}
