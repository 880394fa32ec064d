import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EdgeAgent } from "../edge-agent/agent.ts";
import { apiClient } from "../local/provision.ts";
import { startTestCloud, syncUntilSettled, type TestCloud } from "./support/cloud.ts";
import { dbTargets } from "./support/db.ts";

interface Entry {
  seq: number;
  at: string;
  actor: { type: string; id: string };
  action: string;
  targetId: string | null;
  details: Record<string, unknown>;
  prevHash: string | null;
  hash: string;
}

/**
 * The activity log: who changed who may do what in a project, and who took
 * its data out. Each admin action is recorded with its actor in the action's
 * own transaction, in one append-only hash chain per project.
 */
describe.each(dbTargets())("activity log (%s)", (target) => {
  let t: TestCloud;
  let projectId: string;
  let operatorId: string;
  let admin: string;
  let adminId: string;
  let auditor: string;
  let auditorId: string;
  let reportId: string;

  /** Every entry, page after page; `query` adds an order or a filter. */
  const every = async (token: string, limit = 200, query = "") => {
    const items: Entry[] = [];
    let cursor = "";
    do {
      const page = await t.api(
        `/v1/activity?limit=${limit}${query}${cursor ? `&cursor=${cursor}` : ""}`,
        { token },
      );
      expect(page.status).toBe(200);
      items.push(...page.body.items);
      cursor = page.body.nextCursor ?? "";
    } while (cursor);
    return items;
  };
  const call = async (path: string, init: { method?: string; token: string; body?: unknown }) => {
    const res = await t.api(path, init);
    expect(
      res.status,
      `${init.method ?? (init.body === undefined ? "GET" : "POST")} ${path}`,
    ).toBeLessThan(300);
    return res.body;
  };

  beforeAll(async () => {
    t = await startTestCloud(target);
    const operator = t.cloud.credentials.operator;
    const operatorToken = await t.tokenFor(operator.clientId, operator.clientSecret);
    operatorId = (await t.api("/v1/me", { token: operatorToken })).body.id;
    const project = await call("/v1/projects", {
      token: operatorToken,
      body: { name: "clinic" },
    });
    projectId = project.id;
    admin = await t.tokenFor(project.admin.clientId, project.admin.clientSecret);
    adminId = (await t.api("/v1/me", { token: admin })).body.id;

    // An admin's day: a tablet, its scopes, an auditor, a hold, a retention.
    const tablet = await call("/v1/devices", {
      token: admin,
      body: { name: "ward tablet", scopes: ["ward-3"] },
    });
    const agent = EdgeAgent.open(join(t.dir, "tablet.db"));
    await agent.init(t.cloud.url, tablet.clientId, tablet.clientSecret);
    reportId = agent.create({ patient: "A. N. Other", finding: "stable" }).id;
    await syncUntilSettled(agent);
    agent.close();
    await call(`/v1/devices/${tablet.id}/scopes`, {
      method: "PUT",
      token: admin,
      body: { scopes: ["ward-3", "ward-4"] },
    });
    const member = await call("/v1/members", {
      token: admin,
      body: { name: "Ms Okafor", role: "auditor" },
    });
    auditorId = member.id;
    auditor = await t.tokenFor(member.clientId, member.clientSecret);
    await call(`/v1/reports/${reportId}/hold`, {
      method: "PUT",
      token: auditor,
      body: { reason: "complaint 2026-117" },
    });
    await call(`/v1/reports/${reportId}/hold`, { method: "DELETE", token: admin });
    await call("/v1/project", { method: "PATCH", token: admin, body: { retainDeletedDays: 30 } });
    await call(`/v1/reports/${reportId}/evidence`, { token: auditor });
    await call(`/v1/devices/${tablet.id}`, { method: "DELETE", token: admin });
  });
  afterAll(() => t.stop());

  it("records each action with who did it, to what, and what was set, oldest first", async () => {
    const entries = await every(auditor);
    const tablet = entries[1]!.targetId;
    expect(
      entries.map(({ actor, action, targetId, details }) => ({
        actor,
        action,
        targetId,
        details,
      })),
    ).toEqual([
      {
        actor: { type: "operator", id: operatorId },
        action: "project.create",
        targetId: projectId,
        details: { name: "clinic", admin: adminId },
      },
      {
        actor: { type: "member", id: adminId },
        action: "device.register",
        targetId: expect.any(String),
        details: { name: "ward tablet", scopes: ["ward-3"] },
      },
      {
        actor: { type: "member", id: adminId },
        action: "device.scopes",
        targetId: tablet,
        details: { scopes: ["ward-3", "ward-4"] },
      },
      {
        actor: { type: "member", id: adminId },
        action: "member.add",
        targetId: auditorId,
        details: { name: "Ms Okafor", role: "auditor" },
      },
      {
        actor: { type: "member", id: auditorId },
        action: "hold.place",
        targetId: reportId,
        details: { reason: "complaint 2026-117" },
      },
      {
        actor: { type: "member", id: adminId },
        action: "hold.lift",
        targetId: reportId,
        details: {},
      },
      {
        actor: { type: "member", id: adminId },
        action: "retention.set",
        targetId: projectId,
        details: { retainDeletedDays: 30 },
      },
      {
        actor: { type: "member", id: auditorId },
        action: "evidence.export",
        targetId: reportId,
        details: { entries: 1 },
      },
      {
        actor: { type: "member", id: adminId },
        action: "device.revoke",
        targetId: tablet,
        details: {},
      },
    ]);
    // Ordered, timed, and no secret in it.
    expect(entries.map((e) => e.seq)).toEqual([...entries.map((e) => e.seq)].sort((a, b) => a - b));
    expect(entries.every((e) => Date.parse(e.at) > Date.now() - 300_000)).toBe(true);
    expect(JSON.stringify(entries)).not.toMatch(/secret/i);
    // Page by page, the same entries.
    expect(await every(admin, 2)).toEqual(entries);
    expect(await every(admin, 2, "&order=newest")).toEqual([...entries].reverse());
    // One target's, one actor's, one action's entries.
    const tabletOnly = await every(admin, 2, `&targetId=${tablet}`);
    expect(tabletOnly.map((e) => e.action)).toEqual([
      "device.register",
      "device.scopes",
      "device.revoke",
    ]);
    expect(tabletOnly).toEqual(entries.filter((e) => e.targetId === tablet));
    expect(await every(admin, 1, `&actorId=${auditorId}&order=newest`)).toEqual(
      entries.filter((e) => e.actor.id === auditorId).reverse(),
    );
    expect(await every(admin, 200, "&action=hold.place")).toEqual(
      entries.filter((e) => e.action === "hold.place"),
    );
    expect(await every(admin, 200, `&targetId=${crypto.randomUUID()}`)).toEqual([]);
    for (const bad of ["action=member.delete", "targetId=tablet", "actorId="])
      expect((await t.api(`/v1/activity?${bad}`, { token: admin })).body.error?.code, bad).toBe(
        "validation_failed",
      );
    // A cursor keeps its order: given with the other, it is refused.
    const { nextCursor } = (await t.api("/v1/activity?limit=1&order=newest", { token: admin }))
      .body;
    expect(
      (await t.api(`/v1/activity?limit=1&cursor=${nextCursor}`, { token: admin })).body.error.code,
    ).toBe("validation_failed");
  });

  it("records nothing for an action that did not happen", async () => {
    const before = (await every(admin)).length;
    expect((await t.api(`/v1/members/${adminId}`, { method: "DELETE", token: admin })).status).toBe(
      409,
    );
    expect(
      (await t.api(`/v1/devices/${crypto.randomUUID()}`, { method: "DELETE", token: admin }))
        .status,
    ).toBe(404);
    expect(
      (
        await t.api(`/v1/reports/${crypto.randomUUID()}/hold`, {
          method: "PUT",
          token: admin,
          body: { reason: "x" },
        })
      ).status,
    ).toBe(404);
    expect((await every(admin)).length).toBe(before);
  });

  it("is for the project's auditors and admins alone", async () => {
    const analyst = await call("/v1/members", {
      token: admin,
      body: { name: "Dr Weiss", role: "analyst" },
    });
    const analystToken = await t.tokenFor(analyst.clientId, analyst.clientSecret);
    expect((await t.api("/v1/activity", { token: analystToken })).status).toBe(403);
    // The demo project's admin sees the demo project's log, not this one's.
    const other = await every(await t.adminToken());
    expect(other.some((e) => e.targetId === projectId || e.actor.id === adminId)).toBe(false);
    expect((await t.api("/v1/activity?cursor=forged", { token: admin })).status).toBe(400);
  });

  it("keeps one chain however many admins act at once, and verify finds any change to it", async () => {
    const api = apiClient(t.cloud.url);
    await Promise.all(
      Array.from({ length: 8 }, (_, i) =>
        api.post("v1/members", admin, { name: `Nurse ${i}`, role: "analyst" }),
      ),
    );
    const verified = await call("/v1/audit/verify", { token: auditor });
    const entries = await every(auditor);
    expect(verified.activity).toEqual({ ok: true, checked: entries.length });
    expect(verified.ok).toBe(true);
    expect(entries.map((e) => e.prevHash)).toEqual([
      null,
      ...entries.slice(0, -1).map((e) => e.hash),
    ]);

    // The log cannot be edited…
    await expect(
      t.testDb.db.query("update activity_log set details = '{}' where project_id = $1", [
        projectId,
      ]),
    ).rejects.toThrow(/append-only/);
    await expect(
      t.testDb.db.query("delete from activity_log where project_id = $1", [projectId]),
    ).rejects.toThrow(/append-only/);
    // …and an edit made behind its back is found.
    const hold = entries.find((e) => e.action === "hold.place")!;
    await t.testDb.db.transaction(async (tx) => {
      await tx.exec("alter table activity_log disable trigger activity_log_append_only");
      await tx.query(`update activity_log set details = '{"reason":"routine"}' where seq = $1`, [
        hold.seq,
      ]);
      await tx.exec("alter table activity_log enable trigger activity_log_append_only");
    });
    const tampered = await call("/v1/audit/verify", { token: auditor });
    expect(tampered.ok).toBe(false);
    expect(tampered.activity).toMatchObject({ ok: false, firstBadSeq: hold.seq });
  });
});
