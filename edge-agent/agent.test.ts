import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { parseHlc } from "../core/hlc.ts";
import { type AgentEvent, EdgeAgent, type EdgeAgentError, SyncBusyError } from "./agent.ts";

const DEVICE = "5d6e7f80-1a2b-4c3d-9e8f-0a1b2c3d4e5f";

/** An agent as `init` leaves it, without a cloud: these tests are about the offline side. */
function initialized(path: string, options = {}): EdgeAgent {
  const db = new Database(path);
  db.close();
  const agent = EdgeAgent.open(path, options);
  agent.close();
  const raw = new Database(path);
  const set = raw.prepare("insert into meta (key, value) values (?, ?)");
  set.run("apiUrl", "http://127.0.0.1:1");
  set.run("deviceId", DEVICE);
  set.run("clientId", "dev_x");
  set.run("clientSecret", "s");
  raw.close();
  return EdgeAgent.open(path, options);
}

describe("EdgeAgent offline", () => {
  let dir: string;
  let path: string;
  let agent: EdgeAgent;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "edge-agent-"));
    path = join(dir, "agent.db");
    agent = initialized(path);
  });
  afterEach(async () => {
    try {
      agent.close();
    } catch {}
    await rm(dir, { recursive: true, force: true });
  });

  const outbox = () =>
    new Database(path, { readonly: true })
      .prepare("select change_id, report_id, op, hlc, fields, base, state from outbox order by seq")
      .all() as {
      change_id: string;
      report_id: string;
      op: string;
      hlc: string;
      fields: string | null;
      base: string | null;
      state: string;
    }[];

  it("writes the report and its outbox entry together, stamped with increasing HLCs of this device", () => {
    const report = agent.create({ title: "Pump 3", severity: 2 });
    agent.update(report.id, { severity: 3, notes: null });
    agent.delete(report.id);
    const rows = outbox();
    expect(rows.map((r) => [r.op, r.state])).toEqual([
      ["upsert", "pending"],
      ["upsert", "pending"],
      ["delete", "pending"],
    ]);
    expect(rows.every((r) => parseHlc(r.hlc)?.node === DEVICE)).toBe(true);
    expect([...rows.map((r) => r.hlc)].sort()).toEqual(rows.map((r) => r.hlc));
    expect(new Set(rows.map((r) => r.change_id)).size).toBe(3);
    // UUIDv7: the change ids sort in creation order too.
    expect([...rows.map((r) => r.change_id)].sort()).toEqual(rows.map((r) => r.change_id));
    expect(agent.get(report.id)).toMatchObject({ deleted: true, fields: {} });
    expect(agent.status()).toMatchObject({ pending: 3, sent: 0, deviceId: DEVICE });
  });

  it("records what the editor saw of each field as the change's base", () => {
    const report = agent.create({ title: "a" });
    agent.update(report.id, { title: "b", severity: 1 });
    const [first, second] = outbox();
    expect(JSON.parse(second!.base!)).toEqual({ title: first!.hlc, severity: null });
  });

  it("keeps the clock across restarts, so stamps never go back", () => {
    let wall = 5_000_000_000_000;
    agent.close();
    agent = EdgeAgent.open(path, { now: () => wall });
    const r = agent.create({ a: 1 });
    agent.close();
    wall -= 60_000; // the device clock jumps back a minute
    agent = EdgeAgent.open(path, { now: () => wall });
    agent.update(r.id, { a: 2 });
    const [a, b] = outbox();
    expect(b!.hlc > a!.hlc).toBe(true);
  });

  it("stamps an edit after every stamp the editor saw, even one from a device with a faster clock", () => {
    const other = "0c9d8e7f-6a5b-4c3d-8e2f-1a0b9c8d7e6f";
    const ahead = `${String(Date.now() + 120_000).padStart(15, "0")}:000004:${other}`;
    const raw = new Database(path);
    const id = crypto.randomUUID();
    raw
      .prepare(
        "insert into reports (id, fields, clocks, version, created_at, updated_at) values (?, ?, ?, 1, 'x', 'x')",
      )
      .run(id, JSON.stringify({ title: "theirs" }), JSON.stringify({ title: ahead }));
    raw.close();
    agent.update(id, { title: "mine, written after reading theirs" });
    const [mine] = outbox();
    expect(mine!.hlc > ahead).toBe(true);
    expect(agent.get(id)?.fields.title).toBe("mine, written after reading theirs");
  });

  it("refuses bad writes with a stable code and writes nothing", () => {
    const report = agent.create({ title: "x" });
    const before = outbox().length;
    const code = (fn: () => unknown) => {
      try {
        fn();
      } catch (error) {
        return (error as EdgeAgentError).code;
      }
      return "none";
    };
    expect(code(() => agent.update(report.id, { "bad name": 1 }))).toBe("invalid_change");
    expect(code(() => agent.update(crypto.randomUUID(), { a: 1 }))).toBe("not_found");
    expect(code(() => agent.create({ a: 1 }, report.id))).toBe("invalid_change");
    agent.delete(report.id);
    expect(code(() => agent.update(report.id, { a: 1 }))).toBe("report_deleted");
    expect(outbox().length).toBe(before + 1);
  });

  it("lists reports newest first and finds them by any string field", () => {
    const a = agent.create({ title: "Pump leaking", site: "North" });
    agent.create({ title: "Gate sensor", site: "south" });
    expect(agent.list().map((r) => r.fields.title)).toEqual(["Gate sensor", "Pump leaking"]);
    expect(agent.list("NORTH").map((r) => r.id)).toEqual([a.id]);
  });

  it("lets one sync round run at a time across processes", async () => {
    const other = EdgeAgent.open(path, { lockWaitMs: 300 });
    // Simulate another live process holding the lock (this test process's pid is alive).
    const raw = new Database(path);
    raw
      .prepare("insert into sync_lock (id, owner, pid, expires_at) values (1, 'someone', ?, ?)")
      .run(process.pid, Date.now() + 60_000);
    await expect(other.syncOnce()).rejects.toBeInstanceOf(SyncBusyError);
    // A holder that died (no such pid) does not block anyone.
    raw.prepare("update sync_lock set pid = 2147483646").run();
    raw.close();
    await expect(other.syncOnce()).rejects.not.toBeInstanceOf(SyncBusyError);
    other.close();
  });

  it("works offline: a sync against an unreachable cloud keeps the changes queued and records the error", async () => {
    agent.create({ a: 1 });
    await expect(agent.syncOnce()).rejects.toThrow(/cannot reach/);
    expect(agent.status()).toMatchObject({
      pending: 1,
      lastError: expect.stringMatching(/cannot reach/),
    });
  });

  it("tells subscribers of each write and each sync round until they unsubscribe", async () => {
    const heard: AgentEvent[] = [];
    const unsubscribe = agent.subscribe((e) => heard.push(e));
    const report = agent.create({ title: "seen" });
    agent.update(report.id, { title: "seen again" });
    expect(() => agent.update(report.id, { "bad name": 1 })).toThrow();
    await expect(agent.syncOnce()).rejects.toThrow(/cannot reach/);
    expect(heard.map((e) => e.type)).toEqual(["written", "written", "sync_failed"]);
    expect(heard[1]).toMatchObject({ report: { id: report.id, fields: { title: "seen again" } } });
    expect(heard[2]).toMatchObject({ status: { pending: 2, lastError: expect.any(String) } });

    // A listener that throws is dropped; the write it heard of stands.
    agent.subscribe(() => {
      throw new Error("broken view");
    });
    const kept = agent.create({ title: "kept" });
    expect(agent.get(kept.id)).toBeDefined();

    unsubscribe();
    agent.delete(report.id);
    expect(heard).toHaveLength(4);
  });
});
