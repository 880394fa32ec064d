import type { KeyObject } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { type Change, checkChange } from "../core/change.ts";
import { formatHlc } from "../core/hlc.ts";
import {
  contentOf,
  newDeviceKey,
  privateKeyOf,
  publicKeyOf,
  signChange,
} from "../core/signature.ts";
import { EdgeAgent } from "../edge-agent/agent.ts";
import { openStore } from "../edge-agent/store.ts";
import type { BenchResult } from "./main.ts";

const WRITES = Number(process.env.BENCH_EDGE_WRITES ?? 3000);
const DEVICE = "5d6e7f80-1a2b-4c3d-9e8f-0a1b2c3d4e5f";
const CHECKS = 5000;

/**
 * What ingest does with each change before queueing it (`checkChange`: limits,
 * shape, HLC, clock skew), with the device's signature verified and without,
 * per change, taking turns.
 */
function ingestChecks(): { signedUs: number; unsignedUs: number } {
  const { privateJwk, publicJwk } = newDeviceKey();
  const signing = privateKeyOf(privateJwk);
  const publicKey = publicKeyOf(publicJwk);
  const changes = Array.from({ length: CHECKS }, (_, i) => {
    const change: Change = {
      changeId: crypto.randomUUID(),
      reportId: crypto.randomUUID(),
      op: "upsert",
      hlc: formatHlc({ wall: Date.now(), counter: i % 1000, node: DEVICE }),
      fields: { severity: i % 5, notes: `checked at step ${i}` },
      base: { severity: null, notes: null },
    };
    return { ...change, sig: signChange(signing, contentOf(change)) };
  });
  const context = { deviceId: DEVICE, serverNowMs: Date.now(), maxClockSkewMs: 60_000 };
  const time = (key: KeyObject | null) => {
    const started = performance.now();
    for (const change of changes) {
      const checked = checkChange(change, change.changeId, { ...context, publicKey: key });
      if (!("change" in checked)) throw new Error(checked.rejection.message);
    }
    return ((performance.now() - started) * 1000) / CHECKS;
  };
  time(publicKey); // warm up
  const signed: number[] = [];
  const unsigned: number[] = [];
  for (let round = 0; round < 3; round++) {
    signed.push(time(publicKey));
    unsigned.push(time(null));
  }
  const median = (v: number[]) => v.sort((a, b) => a - b)[1]!;
  return { signedUs: median(signed), unsignedUs: median(unsigned) };
}

/**
 * Local writes per second through the agent (report and outbox entry in one
 * transaction, with merge, HLC, validation and the device's signature)
 * beside raw single-row SQLite inserts of a row of the same size, one
 * transaction each, on a file with the same settings (WAL, synchronous =
 * FULL); the same agent without a key, for what signing costs; and what
 * checking signatures costs ingest.
 */
export async function benchEdge(): Promise<BenchResult[]> {
  const dir = await mkdtemp(join(tmpdir(), "edge-bench-"));
  try {
    const writes = async (name: string, signed: boolean) => {
      // The agent, as `init` leaves it, without a cloud.
      const path = join(dir, `${name}.db`);
      const setup = openStore(path);
      const meta = setup.prepare("insert into meta (key, value) values (?, ?)");
      meta.run("apiUrl", "http://127.0.0.1:1");
      meta.run("deviceId", DEVICE);
      if (signed) meta.run("signingKey", JSON.stringify(newDeviceKey().privateJwk));
      setup.close();
      const agent = EdgeAgent.open(path);
      const ids: string[] = [];
      const started = performance.now();
      for (let i = 0; i < WRITES; i++) {
        // One write in ten creates a report; the others edit one.
        if (i % 10 === 0)
          ids.push(agent.create({ title: `Report ${i}`, severity: i % 5, status: "open" }).id);
        else agent.update(ids[i % ids.length]!, { severity: i % 5, notes: `checked at step ${i}` });
      }
      const ms = performance.now() - started;
      agent.close();
      return ms;
    };
    const agentMs = await writes("signed", true);
    const unsignedMs = await writes("unsigned", false);

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
    const unsignedRate = (WRITES / unsignedMs) * 1000;
    const ingest = ingestChecks();
    return [
      {
        name: "edge agent local writes, signed (anchor: raw SQLite inserts)",
        value: Math.round(agentRate),
        unit: "writes/s",
        baseline: Math.round(rawRate),
        ratio: agentRate / rawRate,
        target: 0.3,
      },
      {
        name: "edge agent local writes, signed (anchor: the same agent without a key)",
        value: Math.round(agentRate),
        unit: "writes/s",
        baseline: Math.round(unsignedRate),
        ratio: agentRate / unsignedRate,
      },
      {
        name: "ingest checks per change, signature verified (anchor: the same checks without a key)",
        value: Number(ingest.signedUs.toFixed(1)),
        unit: "µs",
        baseline: Number(ingest.unsignedUs.toFixed(1)),
        ratio: ingest.unsignedUs / ingest.signedUs,
      },
    ];
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
