import Database from "better-sqlite3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startCli } from "./support/cli.ts";
import { startTestCloud, syncUntilSettled, type TestCloud } from "./support/cloud.ts";
import { dbTargets } from "./support/db.ts";

const KILLS = Number(process.env.CRASH_KILLS ?? 50);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe.each(dbTargets())("edge agent killed mid-sync (%s)", (target) => {
  let t: TestCloud;
  beforeAll(async () => {
    t = await startTestCloud(target);
  });
  afterAll(() => t.stop());

  it(`loses and duplicates nothing across ${KILLS} SIGKILLs while writes go on`, async () => {
    const { agent, path, deviceId } = await t.agent("crash site");
    const reportIds: string[] = [];
    let writes = 0;
    let writing = true;
    // Writes go on in this process while a second process syncs the same file.
    const writer = (async () => {
      while (writing) {
        if (reportIds.length === 0 || Math.random() < 0.3) {
          reportIds.push(agent.create({ title: `report ${writes}`, n: writes }).id);
        } else {
          agent.update(reportIds[Math.floor(Math.random() * reportIds.length)]!, {
            n: writes,
            note: `edit ${writes}`,
          });
        }
        writes++;
        await sleep(10 + Math.random() * 20);
      }
    })();

    let killedMidRun = 0;
    let killedInRound = 0;
    const watcher = new Database(path, { readonly: true });
    const lockHolder = watcher.prepare("select pid from sync_lock");
    for (let i = 0; i < KILLS; i++) {
      const child = startCli(["run", "--interval", "0.05"], { EDGE_AGENT_DB: path });
      const exited = new Promise<number | null>((resolve) =>
        child.once("exit", (code) => resolve(code)),
      );
      // Wait until the child is inside a sync round (it holds the lock), then
      // kill it at a random point of the round: pushing, recording, pulling.
      const deadline = Date.now() + 5_000;
      while (
        (lockHolder.get() as { pid: number } | undefined)?.pid !== child.pid &&
        Date.now() < deadline
      ) {
        await sleep(1);
      }
      await sleep(Math.random() * 40);
      if (child.exitCode === null) killedMidRun++;
      child.kill("SIGKILL");
      await exited;
      // A lock row left by the dead child: it died inside a sync round.
      if ((lockHolder.get() as { pid: number } | undefined)?.pid === child.pid) killedInRound++;
    }
    watcher.close();
    writing = false;
    await writer;
    expect(killedMidRun).toBe(KILLS);
    // Most kills land inside a round (the rest just after one ended).
    expect(killedInRound).toBeGreaterThan(KILLS / 2);
    const pushedByChildren = await t.testDb.db.query<{ n: number }>(
      "select count(*)::int as n from audit_log where actor_id = $1",
      [deviceId],
    );
    expect(pushedByChildren[0]!.n).toBeGreaterThan(0);

    await syncUntilSettled(agent, 60_000);
    // Once more, so every agent-side ack of the last round's changes is in.
    await agent.syncOnce();

    const raw = new Database(path, { readonly: true });
    expect(raw.pragma("integrity_check", { simple: true })).toBe("ok");
    const outbox = raw.prepare("select change_id, state from outbox").all() as {
      change_id: string;
      state: string;
    }[];
    raw.close();
    // Every local write is in the outbox, and every one reached an outcome.
    expect(outbox).toHaveLength(writes);
    expect(outbox.filter((o) => !["applied", "partial", "superseded"].includes(o.state))).toEqual(
      [],
    );

    // The cloud holds each change exactly once.
    const audit = await t.testDb.db.query<{ change_id: string; n: number }>(
      "select change_id, count(*)::int as n from audit_log where actor_id = $1 group by change_id",
      [deviceId],
    );
    expect(audit.filter((a) => a.n !== 1)).toEqual([]);
    expect(new Set(audit.map((a) => a.change_id))).toEqual(new Set(outbox.map((o) => o.change_id)));

    // And the agent's view of every report is the cloud's.
    const cloud = await t.testDb.db.query<{ id: string; fields: unknown }>(
      "select id, fields from reports where id = any($1::uuid[])",
      [reportIds],
    );
    expect(cloud).toHaveLength(reportIds.length);
    for (const row of cloud) expect(agent.get(row.id)?.fields).toEqual(row.fields);
  }, 300_000);
});
