import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { EdgeAgent } from "../edge-agent/agent.ts";
import { openStore } from "../edge-agent/store.ts";
import type { BenchResult } from "./main.ts";

const WRITES = Number(process.env.BENCH_EDGE_WRITES ?? 3000);

/**
 * Local writes per second through the agent (report and outbox entry in one
 * transaction, with merge, HLC and validation) beside raw single-row SQLite
 * inserts of a row of the same size, one transaction each, on a file with the
 * same settings (WAL, synchronous = FULL).
 */
export async function benchEdge(): Promise<BenchResult[]> {
  const dir = await mkdtemp(join(tmpdir(), "edge-bench-"));
  try {
    // The agent, as `init` leaves it, without a cloud.
    const agentPath = join(dir, "agent.db");
    const setup = openStore(agentPath);
    const meta = setup.prepare("insert into meta (key, value) values (?, ?)");
    meta.run("apiUrl", "http://127.0.0.1:1");
    meta.run("deviceId", "5d6e7f80-1a2b-4c3d-9e8f-0a1b2c3d4e5f");
    setup.close();
    const agent = EdgeAgent.open(agentPath);
    const ids: string[] = [];
    const started = performance.now();
    for (let i = 0; i < WRITES; i++) {
      // One write in ten creates a report; the others edit one.
      if (i % 10 === 0)
        ids.push(agent.create({ title: `Report ${i}`, severity: i % 5, status: "open" }).id);
      else agent.update(ids[i % ids.length]!, { severity: i % 5, notes: `checked at step ${i}` });
    }
    const agentMs = performance.now() - started;
    agent.close();

    const rawPath = join(dir, "raw.db");
    const raw = new Database(rawPath);
    raw.pragma("journal_mode = WAL");
    raw.pragma("synchronous = FULL");
    raw.exec("create table rows (id integer primary key, body text not null)");
    const insert = raw.prepare("insert into rows (body) values (?)");
    const body = JSON.stringify({
      title: "Report 0",
      severity: 1,
      notes: "checked at step 0",
      status: "open",
    });
    const rawStarted = performance.now();
    for (let i = 0; i < WRITES; i++) insert.run(body); // autocommit: one transaction per row
    const rawMs = performance.now() - rawStarted;
    raw.close();

    const agentRate = (WRITES / agentMs) * 1000;
    const rawRate = (WRITES / rawMs) * 1000;
    return [
      {
        name: "edge agent local writes",
        value: Math.round(agentRate),
        unit: "writes/s",
        baseline: Math.round(rawRate),
        ratio: agentRate / rawRate,
        target: 0.3,
      },
    ];
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
