import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RETENTION_ACTOR } from "../core/wire-custody.ts";
import { EdgeAgent } from "../edge-agent/agent.ts";
import { runRetention } from "../functions/app/erasure.ts";
import { create as retentionHandler } from "../functions/retention.ts";
import { lambdaContext } from "../local/lambda-context.ts";
import { provision } from "../local/provision.ts";
import { startTestCloud, syncUntilSettled, type TestCloud } from "./support/cloud.ts";
import { dbTargets } from "./support/db.ts";
import { handlerDeps } from "./support/deps.ts";

const DAY = 86_400_000;

describe.each(dbTargets())("legal hold and retention (%s)", (target) => {
  let t: TestCloud;
  beforeAll(async () => {
    // The schedule runs every 200 ms here, with the real clock.
    t = await startTestCloud(target, { retentionIntervalMs: 200 });
  });
  afterAll(() => t.stop());

  /** A project with a tablet's agent, and `others` devices registered beside it. */
  async function site(name: string, others: string[] = []) {
    const { project, devices } = await provision(t.cloud.url, t.cloud.credentials.operator, {
      project: name,
      devices: ["tablet", ...others],
    });
    const agent = EdgeAgent.open(join(t.dir, `${name.replace(/\W+/g, "-")}.db`));
    await agent.init(t.cloud.url, devices[0]!.clientId, devices[0]!.clientSecret);
    const admin = await t.tokenFor(project.admin.clientId, project.admin.clientSecret);
    const api = (path: string, method: string, body?: unknown) =>
      t.api(path, { method, token: admin, body });
    return { projectId: project.id, agent, admin, api, others: devices.slice(1) };
  }
  const retentionOf = (reportId: string) =>
    t.testDb.db.query<{ reason: string }>(
      "select reason from erasures where report_id = $1 and reason = 'retention'",
      [reportId],
    );

  it("erases deleted reports past the project's retention, by the clock, and never a held one", async () => {
    const { agent, admin } = await site("thirty days");
    const [gone, held, kept] = ["Burst main", "Disputed repair", "Open job"].map(
      (title) => agent.create({ title, contact: "Sam Field, 0700 900 123" }).id,
    ) as [string, string, string];
    agent.delete(gone);
    agent.delete(held);
    await syncUntilSettled(agent);
    agent.close();
    const api = (path: string, method: string, body?: unknown) =>
      t.api(path, { method, token: admin, body });
    expect((await api("/v1/project", "PATCH", { retainDeletedDays: 30 })).body).toMatchObject({
      retainDeletedDays: 30,
    });
    const hold = await api(`/v1/reports/${held}/hold`, "PUT", { reason: "case 2026-118" });
    expect(hold.status).toBe(200);

    const at = (days: number) => () => Date.now() + days * DAY;
    await runRetention(t.testDb.db, at(29));
    for (const id of [gone, held, kept]) expect(await retentionOf(id)).toEqual([]);

    await runRetention(t.testDb.db, at(31));
    expect(await retentionOf(gone)).toEqual([{ reason: "retention" }]);
    expect(await retentionOf(held)).toEqual([]);
    expect(await retentionOf(kept)).toEqual([]);
    const history = (await api(`/v1/reports/${gone}/history`, "GET")).body.items;
    expect(history[0].after).toEqual({ title: null, contact: null });

    // Held: neither retention nor a request may erase it, until the hold is lifted.
    const refused = await api("/v1/erasures", "POST", { reportId: held, reason: "request" });
    expect(refused).toMatchObject({ status: 409, body: { error: { code: "legal_hold" } } });
    expect((await api(`/v1/reports/${held}/hold`, "DELETE")).status).toBe(204);
    await runRetention(t.testDb.db, at(31));
    await runRetention(t.testDb.db, at(32)); // once only
    expect(await retentionOf(held)).toEqual([{ reason: "retention" }]);
    expect((await api("/v1/audit/verify", "GET")).body).toMatchObject({ ok: true });
  });

  it("is not held off by an admin's erasure that names retention as its reason", async () => {
    const { agent, api } = await site("reasons");
    const report = agent.create({ title: "Old survey", contact: "Sam Field, 0700 900 123" });
    agent.delete(report.id);
    await syncUntilSettled(agent);
    agent.close();
    await api("/v1/project", "PATCH", { retainDeletedDays: 30 });
    const early = await api("/v1/erasures", "POST", {
      reportId: report.id,
      fields: ["title"],
      reason: "retention",
    });
    expect(early.status).toBe(201);
    const {
      made: [made],
    } = await runRetention(t.testDb.db, () => Date.now() + 31 * DAY);
    expect(made).toMatchObject({ reportId: report.id, requestedBy: RETENTION_ACTOR });
    const history = (await api(`/v1/reports/${report.id}/history`, "GET")).body.items;
    expect(history[0].after).toEqual({ title: null, contact: null });
  });

  it("counts a device done with retention's erasure only once its agent purges (0.4.0 on)", async () => {
    const { agent, api, others } = await site("mixed fleet", ["older tablet"]);
    // An agent from before the purge: erases what it is asked to, and no more.
    const older = await t.tokenFor(others[0]!.clientId, others[0]!.clientSecret);
    let cursor = "";
    const olderPulls = async () => {
      for (let more = true; more; ) {
        const page = await t.api(
          `/v1/sync${cursor ? `?cursor=${encodeURIComponent(cursor)}` : ""}`,
          {
            token: older,
            headers: { "user-agent": "edge-agent/0.3.0 (linux-arm64; node/20.19.0)" },
          },
        );
        expect(page.status).toBe(200);
        cursor = page.body.cursor;
        more = page.body.hasMore;
      }
    };

    const deleted = agent.create({ title: "Burst main", contact: "Sam Field, 0700 900 123" });
    const kept = agent.create({ title: "Open job", contact: "Alex Ward, 0700 900 456" });
    agent.delete(deleted.id);
    await syncUntilSettled(agent);
    await olderPulls();
    await api("/v1/project", "PATCH", { retainDeletedDays: 30 });
    const requested = await api("/v1/erasures", "POST", {
      reportId: kept.id,
      fields: ["contact"],
      reason: "request 2026-31",
    });
    expect(requested.status).toBe(201);
    const {
      made: [retained],
    } = await runRetention(t.testDb.db, () => Date.now() + 31 * DAY);
    expect(retained).toMatchObject({ reportId: deleted.id, requestedBy: RETENTION_ACTOR });

    // Each device pulls past both erasures, and once more from there.
    for (let i = 0; i < 2; i++) {
      await syncUntilSettled(agent);
      await olderPulls();
    }
    agent.close();
    const erasure = async (id: string) => (await api(`/v1/erasures/${id}`, "GET")).body;
    expect(await erasure(requested.body.id)).toMatchObject({ devicesDone: 2, devicesPending: 0 });
    expect(await erasure(retained!.id)).toMatchObject({ devicesDone: 1, devicesPending: 1 });
  });

  it("runs on the local cloud's schedule, as the stack's hourly rule does", async () => {
    const { agent, admin } = await site("no retention");
    const report = agent.create({ title: "Temporary note" });
    agent.delete(report.id);
    await syncUntilSettled(agent);
    agent.close();
    await t.api("/v1/project", { method: "PATCH", token: admin, body: { retainDeletedDays: 0 } });
    const deadline = Date.now() + 60_000;
    while ((await retentionOf(report.id)).length === 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(await retentionOf(report.id)).toEqual([{ reason: "retention" }]);
  });

  it("goes on past a report whose erasure fails, fails the run at its end, and leaves what its time does not allow to the next", async () => {
    const { agent, api } = await site("a backlog");
    const ids = ["Leak", "Crack", "Rust"].map((title) => agent.create({ title }).id);
    for (const id of ids) agent.delete(id);
    await syncUntilSettled(agent);
    agent.close();
    await api("/v1/project", "PATCH", { retainDeletedDays: 30 });
    const later = () => Date.now() + 31 * DAY;

    // Time already up: nothing erased, all three left to the next run.
    expect(await runRetention(t.testDb.db, later, { deadline: 0 })).toMatchObject({
      made: [],
      failed: [],
      left: 3,
    });

    // One report's erasure fails (a fault put in by a trigger): the others are erased all the same.
    const [broken, ...fine] = ids as [string, ...string[]];
    await t.testDb.db.exec(`
      create function refuse_erasure() returns trigger language plpgsql as
        $$ begin raise exception 'disk full'; end $$;
      create trigger refuse_erasure before update on reports for each row
        when (old.id = '${broken}') execute function refuse_erasure();`);
    const { deps, stop } = await handlerDeps(t.testDb.db);
    try {
      const run = retentionHandler({ ...deps, now: later });
      await expect(run({} as never, lambdaContext("retention", "test"))).rejects.toThrow(
        /could not erase 1 report/,
      );
      for (const id of fine) expect(await retentionOf(id)).toEqual([{ reason: "retention" }]);
      expect(await retentionOf(broken)).toEqual([]);

      // Mended, the next run erases it.
      await t.testDb.db.exec(
        "drop trigger refuse_erasure on reports; drop function refuse_erasure();",
      );
      expect(await run({} as never, lambdaContext("retention", "test"))).toEqual({
        erased: 1,
        left: 0,
      });
      expect(await retentionOf(broken)).toEqual([{ reason: "retention" }]);
    } finally {
      await stop();
    }
  });
});
