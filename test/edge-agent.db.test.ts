import { copyFileSync, rmSync } from "node:fs";
import { createServer, request } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { PurgeQueueCommand } from "@aws-sdk/client-sqs";
import Database from "better-sqlite3";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { formatHlc } from "../core/hlc.ts";
import type { Report } from "../core/wire.ts";
import { EdgeAgent } from "../edge-agent/agent.ts";
import { createSqsClient } from "../functions/adapters/queue.ts";
import { type ApplyItem, applyChanges } from "../functions/app/apply/apply-changes.ts";
import { provision } from "../local/provision.ts";
import { runCli, startCli } from "./support/cli.ts";
import { startTestCloud, syncUntilSettled, type TestCloud } from "./support/cloud.ts";
import { dbTargets } from "./support/db.ts";

describe.each(dbTargets())("edge agent against the local cloud (%s)", (target) => {
  let t: TestCloud;
  beforeAll(async () => {
    // One test moves Date.now past SQS's deduplication window.
    t = await startTestCloud(target, { sqsInThisThread: true });
  });
  afterAll(() => t.stop());

  it("keeps working with the cloud down: writes succeed, sync exits 2 and keeps them queued, one sync drains them later", async () => {
    const { agent, path } = await t.agent("offline site");
    agent.close();
    const env = { EDGE_AGENT_DB: path };
    await t.down();
    try {
      const created = await runCli(
        ["create", "--set", "title=Flooded road", "--set", "severity=4"],
        env,
      );
      expect(created.code).toBe(0);
      const id = created.stdout.trim();
      expect((await runCli(["update", id, "--set", "severity=5"], env)).code).toBe(0);

      const sync = await runCli(["sync"], env);
      expect(sync.code).toBe(2);
      expect(sync.stderr).toMatch(/unreachable/);
      const status = JSON.parse((await runCli(["status", "--json"], env)).stdout);
      expect(status).toMatchObject({
        pending: 2,
        sent: 0,
        lastError: expect.stringMatching(/cannot reach/),
      });
      expect(JSON.parse((await runCli(["show", id, "--json"], env)).stdout).fields).toEqual({
        title: "Flooded road",
        severity: 5,
      });
    } finally {
      await t.up();
    }
    const back = await runCli(["sync", "--json"], env);
    expect(back.code).toBe(0);
    // Pushed, and possibly already acknowledged in the same round's pull.
    const summary = JSON.parse(back.stdout);
    expect(summary).toMatchObject({ pushed: 2, status: { pending: 0, lastError: null } });
    expect(summary.status.sent + summary.status.applied).toBe(2);
  });

  it("sends a change again when the cloud accepted it but it never reached the database", async () => {
    // The agent reads the clock through Date.now, which this test moves forward.
    const { agent } = await t.agent("purged site", { now: () => Date.now() });
    await t.cloud.setConsumerRunning(false);
    const report = agent.create({ title: "Lost in the queue" });
    expect((await agent.syncOnce()).pushed).toBe(1);
    const sqs = createSqsClient("us-east-1", t.cloud.config.sqsEndpoint);
    await sqs.send(new PurgeQueueCommand({ QueueUrl: t.cloud.config.queueUrl }));
    sqs.destroy();
    await t.cloud.setConsumerRunning(true);

    // Not yet due: the round sends nothing and the change waits as sent.
    expect((await agent.syncOnce()).pushed).toBe(0);
    expect(agent.status()).toMatchObject({ sent: 1, applied: 0 });

    // Ten minutes on: past the resend timeout, and past SQS's 5-minute
    // deduplication window, which would otherwise swallow the resend.
    const realNow = Date.now.bind(Date);
    const clock = vi.spyOn(Date, "now").mockImplementation(() => realNow() + 10 * 60_000 + 1_000);
    try {
      await syncUntilSettled(agent);
    } finally {
      clock.mockRestore();
    }
    expect(agent.status()).toMatchObject({ sent: 0, applied: 1 });
    const rows = await t.testDb.db.query<{ n: number }>(
      "select count(*)::int as n from audit_log where report_id = $1",
      [report.id],
    );
    expect(rows[0]!.n).toBe(1);
  });

  it("lands the valid changes around an invalid one, and shows the invalid one as rejected with its code", async () => {
    const { agent, path, deviceId } = await t.agent("mixed site");
    const first = agent.create({ title: "valid 1" });
    // An entry an older agent version could have queued: a field name the cloud refuses.
    const raw = new Database(path);
    const badId = crypto.randomUUID();
    raw
      .prepare(
        "insert into outbox (change_id, report_id, op, hlc, fields, base, created_at) values (?, ?, 'upsert', ?, ?, null, ?)",
      )
      .run(
        badId,
        first.id,
        formatHlc({ wall: Date.now(), counter: 999, node: deviceId }),
        '{"bad name":1}',
        new Date().toISOString(),
      );
    raw.close();
    const last = agent.create({ title: "valid 2" });
    await syncUntilSettled(agent);
    const status = agent.status();
    expect(status).toMatchObject({ pending: 0, sent: 0, applied: 2, rejected: 1 });
    expect(status.rejectedChanges).toEqual([
      {
        changeId: badId,
        reportId: first.id,
        code: "invalid_change",
        message: expect.any(String),
        replacedBy: null,
      },
    ]);
    const landed = await t.testDb.db.query<{ id: string }>(
      "select id from reports where id = any($1::uuid[])",
      [[first.id, last.id]],
    );
    expect(landed).toHaveLength(2);
    const cli = await runCli(["status"], { EDGE_AGENT_DB: path });
    expect(cli.stdout).toMatch(new RegExp(`rejected\\s+${badId}.*invalid_change`));
  });

  it("fetches a new token once when the cloud refuses the stored one", async () => {
    const { agent, path } = await t.agent("stale token site");
    agent.create({ title: "needs a fresh token" });
    const raw = new Database(path);
    raw.prepare("update meta set value = 'not.a.token' where key = 'token'").run();
    raw.close();
    await syncUntilSettled(agent);
    expect(agent.status()).toMatchObject({ applied: 1, lastError: null });
  });

  it("run syncs soon after a local write and stops cleanly on SIGTERM, finishing its round", async () => {
    const { agent, path } = await t.agent("looping site");
    const child = startCli(["run", "--interval", "30"], { EDGE_AGENT_DB: path });
    const exited = new Promise<number | null>((resolve) =>
      child.once("exit", (code) => resolve(code)),
    );
    // Started, and its first round done: the next is 30 s away.
    const before = agent.status().lastSyncAt;
    await vi.waitFor(() => expect(agent.status().lastSyncAt).not.toBe(before), {
      timeout: 60_000,
      interval: 100,
    });
    const report = agent.create({ title: "picked up by the loop" });
    // Before the 30 s interval: the loop noticed the write.
    const deadline = Date.now() + 25_000;
    let applied = false;
    while (!applied && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 200));
      const rows = await t.testDb.db.query("select 1 from reports where id = $1", [report.id]);
      applied = rows.length === 1;
    }
    expect(applied).toBe(true);
    child.kill("SIGTERM");
    expect(await exited).toBe(0);
    const raw = new Database(path, { readonly: true });
    expect(raw.prepare("select count(*) as n from sync_lock").get()).toEqual({ n: 0 });
    raw.close();
  });

  it("backs up while run is writing: the copy passes integrity_check, and restored, the agent syncs on to the cloud's state", async () => {
    const { agent, path } = await t.agent("backed up site");
    for (let i = 0; i < 50; i++) agent.create({ title: `before ${i}` });
    const child = startCli(["run", "--interval", "0.2"], { EDGE_AGENT_DB: path });
    const exited = new Promise<number | null>((resolve) =>
      child.once("exit", (code) => resolve(code)),
    );
    const file = `${path}.backup`;
    // The copy is taken by another process while this one writes and run syncs.
    const backup = runCli(["backup", file, "--json"], { EDGE_AGENT_DB: path });
    let written = 50;
    let done = false;
    void backup.finally(() => {
      done = true;
    });
    while (!done) {
      agent.update(agent.create({ title: `during ${written}` }).id, { severity: written % 5 });
      written += 1;
      await new Promise((r) => setTimeout(r, 2));
    }
    const result = await backup;
    expect(result.code, result.stderr).toBe(0);
    expect(JSON.parse(result.stdout)).toMatchObject({ file });
    const copy = new Database(file, { readonly: true });
    expect(copy.pragma("integrity_check", { simple: true })).toBe("ok");
    const copied = (copy.prepare("select count(*) as n from reports").get() as { n: number }).n;
    copy.close();
    expect(copied).toBeGreaterThanOrEqual(50);
    expect(copied).toBeLessThanOrEqual(written);

    // Some more that reach the cloud after the backup, then the restore as documented.
    for (let i = 0; i < 5; i++) agent.create({ title: `after ${i}` });
    await syncUntilSettled(agent);
    child.kill("SIGTERM");
    expect(await exited).toBe(0);
    agent.close();
    for (const suffix of ["-wal", "-shm"]) rmSync(`${path}${suffix}`, { force: true });
    copyFileSync(file, path);

    const restored = EdgeAgent.open(path);
    try {
      await syncUntilSettled(restored);
      // Whatever the copy still had to send was sent again and applied once;
      // what reached the cloud after the copy came back with the pull.
      expect(restored.status()).toMatchObject({ pending: 0, sent: 0, rejected: 0 });
      const deviceId = restored.status().deviceId;
      const local = new Map(
        restored
          .list()
          .filter((r) => r.createdBy === deviceId)
          .map((r) => [r.id, r.fields]),
      );
      const cloud = await t.testDb.db.query<{ id: string; fields: unknown }>(
        "select id, fields from reports where created_by = $1",
        [deviceId],
      );
      expect(local.size).toBe(written + 5);
      expect(new Map(cloud.map((r) => [r.id, r.fields]))).toEqual(local);
    } finally {
      restored.close();
    }
  });

  it("keeps the writes of a device whose clock runs an hour fast: refused once, re-stamped from the cloud's time, applied", async () => {
    const fast = () => Date.now() + 60 * 60_000;
    const { agent } = await t.agent("fast clock site", { now: fast });
    const report = agent.create({ title: "written with a fast clock", severity: 2 });
    agent.update(report.id, { severity: 3 });
    await syncUntilSettled(agent);
    const status = agent.status();
    // Both first attempts were refused for their clock and replaced by changes that applied.
    expect(status).toMatchObject({ rejected: 2, applied: 2, pending: 0, sent: 0 });
    expect(
      status.rejectedChanges.every((r) => r.code === "clock_skew" && r.replacedBy !== null),
    ).toBe(true);
    const rows = await t.testDb.db.query<{ fields: unknown; clocks: Record<string, string> }>(
      "select fields, clocks from reports where id = $1",
      [report.id],
    );
    expect(rows[0]!.fields).toEqual({ title: "written with a fast clock", severity: 3 });
    // Stamped near server time, not an hour ahead.
    for (const stamp of Object.values(rows[0]!.clocks)) {
      expect(Math.abs(Number(stamp.slice(0, 15)) - Date.now())).toBeLessThan(60_000);
    }
    // Writes after the first sync are stamped from the corrected clock and accepted first time.
    agent.update(report.id, { status: "closed" });
    await syncUntilSettled(agent);
    expect(agent.status()).toMatchObject({ rejected: 2, applied: 3 });
  });

  it("pulls reports too large for one answer in pages that each fit in a Lambda response", async () => {
    // Thirty reports of about 210 KiB each: 6.3 MB, more than Lambda may answer at once.
    const { agent: writer } = await t.agent("large reports site");
    const big = (i: number, field: number) => `${i}:${field}:${"x".repeat(30_000)}`;
    const written = Array.from({ length: 30 }, (_, i) =>
      writer.create(
        Object.fromEntries(Array.from({ length: 7 }, (_, f) => [`part${f}`, big(i, f)])),
      ),
    );
    await syncUntilSettled(writer);

    const { agent: reader } = await t.agent("large reports reader");
    const pages: number[] = [];
    await reader.syncOnce((p) => p.phase === "pull" && pages.push(p.done));
    expect(pages.length).toBeGreaterThan(1);
    for (const report of written) {
      expect(reader.get(report.id)?.fields).toEqual(report.fields);
    }
  });

  it("resumes a first sync killed half-way after the last page it wrote, and ends with every report once", async () => {
    // A project of its own with 2,500 reports: three pages of the agent's 1,000.
    const { project, devices } = await provision(t.cloud.url, t.cloud.credentials.operator, {
      project: "first sync",
      devices: ["busy site", "new tablet"],
    });
    const [writer, tablet] = devices as [(typeof devices)[0], (typeof devices)[0]];
    const projectId = project.id;
    const ids = Array.from({ length: 2_500 }, () => crypto.randomUUID());
    const items: ApplyItem[] = ids.map((reportId, i) => ({
      projectId,
      deviceId: writer.id,
      receivedAt: new Date().toISOString(),
      change: {
        changeId: crypto.randomUUID(),
        reportId,
        op: "upsert",
        hlc: formatHlc({ wall: Date.now(), counter: i, node: writer.id }),
        fields: { title: `inspection ${i}` },
      },
    }));
    for (let i = 0; i < items.length; i += 250)
      await applyChanges(t.testDb.db, items.slice(i, i + 250));

    // A proxy in front of the cloud that holds the third page's request.
    let pulls = 0;
    const proxy = createServer((req, res) => {
      if (req.url?.startsWith("/v1/sync") && ++pulls === 3) return; // never answered
      const upstream = request(
        new URL(req.url ?? "/", t.cloud.url),
        { method: req.method, headers: req.headers },
        (answer) => {
          res.writeHead(answer.statusCode ?? 502, answer.headers);
          answer.pipe(res);
        },
      );
      req.pipe(upstream);
    });
    await new Promise<void>((listening) => proxy.listen(0, "127.0.0.1", listening));
    const { port } = proxy.address() as AddressInfo;
    try {
      const path = join(t.dir, "new-tablet.db");
      const agent = EdgeAgent.open(path);
      await agent.init(`http://127.0.0.1:${port}`, tablet.clientId, tablet.clientSecret);
      agent.close();
      const raw = new Database(path);
      const env = { EDGE_AGENT_DB: path };
      const child = startCli(["sync"], env);
      const killed = new Promise((exited) => child.once("exit", exited));
      // Two pages written (the third asked for and held), then kill -9.
      const stored = () =>
        (raw.prepare("select count(*) as n from reports").get() as { n: number }).n;
      const deadline = Date.now() + 60_000;
      while (stored() < 2_000 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      expect(stored()).toBe(2_000);
      child.kill("SIGKILL");
      await killed;
      raw.close();

      // The next sync asks for the third page only.
      pulls = 10;
      const resumed = await runCli(["sync", "--json"], env);
      expect(resumed.code, resumed.stderr).toBe(0);
      expect(JSON.parse(resumed.stdout)).toMatchObject({ pulledReports: 500 });
      const local = JSON.parse((await runCli(["list", "--json"], env)).stdout) as Report[];
      expect(local.map((r) => r.id).sort()).toEqual(ids.sort());
    } finally {
      await new Promise((closed) => proxy.close(closed));
    }
  });
});
