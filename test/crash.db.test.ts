import Database from "better-sqlite3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RequestInterceptor } from "../local/api-gateway.ts";
import { startCli } from "./support/cli.ts";
import { startTestCloud, syncUntilSettled, type TestCloud } from "./support/cloud.ts";
import { dbTargets } from "./support/db.ts";
import { runs } from "./support/runs.ts";

const KILLS = runs("CRASH_KILLS", 50, 25);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Where in a sync round a child is killed: each kill lands at one of them, by construction. */
const KILL_POINTS = [
  "push sent, not yet taken by the cloud",
  "push taken by the cloud, its answer not yet delivered",
  "pull sent, not yet answered",
] as const;
type KillPoint = (typeof KILL_POINTS)[number];

/**
 * Holds the next request of the chosen kind at the chosen point until
 * released, and says when one has reached it. A child holding the request
 * open is inside its sync round, with the lock, for as long as the test wants.
 */
class Trap {
  private armed?: { point: KillPoint; reached: () => void; release: Promise<void> };
  /** Change ids the cloud took in pushes whose answer never reached the agent. */
  readonly takenUnanswered: string[] = [];

  arm(point: KillPoint) {
    let reached!: () => void;
    let release!: () => void;
    const hit = new Promise<void>((r) => {
      reached = r;
    });
    this.armed = { point, reached, release: new Promise((r) => (release = r)) };
    return { hit, release: () => release() };
  }

  readonly around: RequestInterceptor = async (request, next) => {
    const armed = this.armed;
    const push = request.method === "POST" && request.resource === "/v1/changes";
    const pull = request.method === "GET" && request.resource === "/v1/sync";
    if (!armed || !(push || pull) || (armed.point === KILL_POINTS[2]) !== pull) return next();
    this.armed = undefined;
    if (armed.point === KILL_POINTS[0]) {
      armed.reached();
      await armed.release;
      return next();
    }
    const result = await next();
    if (armed.point === KILL_POINTS[1])
      this.takenUnanswered.push(...(JSON.parse(result.body) as { accepted: string[] }).accepted);
    armed.reached();
    await armed.release;
    return result;
  };
}

describe.each(dbTargets())("edge agent killed mid-sync (%s)", (target) => {
  let t: TestCloud;
  const trap = new Trap();
  beforeAll(async () => {
    t = await startTestCloud(target, { around: trap.around });
  });
  afterAll(() => t.stop());

  it(`loses and duplicates nothing across ${KILLS} SIGKILLs inside sync rounds while writes go on`, async () => {
    const { agent, path, deviceId } = await t.agent("crash site");
    const reportIds: string[] = [];
    let writes = 0;
    const write = () => {
      if (reportIds.length === 0 || Math.random() < 0.3) {
        reportIds.push(agent.create({ title: `report ${writes}`, n: writes }).id);
      } else {
        agent.update(reportIds[Math.floor(Math.random() * reportIds.length)]!, {
          n: writes,
          note: `edit ${writes}`,
        });
      }
      writes++;
    };
    let writing = true;
    // Writes go on in this process while a second process syncs the same file.
    const writer = (async () => {
      while (writing) {
        write();
        await sleep(10 + Math.random() * 20);
      }
    })();

    const watcher = new Database(path, { readonly: true });
    const lockHolder = watcher.prepare("select pid from sync_lock");
    for (let i = 0; i < KILLS; i++) {
      const point = KILL_POINTS[i % KILL_POINTS.length]!;
      // Something due, so the child's round starts with a push.
      write();
      const trapped = trap.arm(point);
      const child = startCli(["run", "--interval", "0.05"], { EDGE_AGENT_DB: path });
      const exited = new Promise<number | null>((resolve) =>
        child.once("exit", (code) => resolve(code)),
      );
      const reached = await Promise.race([
        trapped.hit.then(() => true),
        exited.then(() => false),
        sleep(60_000).then(() => false),
      ]);
      expect(reached, `kill ${i}: the child reached "${point}"`).toBe(true);
      expect(child.exitCode).toBeNull();
      // Inside its round, holding the sync lock, its request held open.
      expect((lockHolder.get() as { pid: number } | undefined)?.pid).toBe(child.pid);
      child.kill("SIGKILL");
      await exited;
      trapped.release();
    }
    watcher.close();
    writing = false;
    await writer;
    // Pushes the cloud took from a child that never heard back: the resend
    // must not apply them twice.
    expect(trap.takenUnanswered.length).toBeGreaterThan(0);

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
