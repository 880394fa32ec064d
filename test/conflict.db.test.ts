import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli } from "./support/cli.ts";
import { startTestCloud, syncUntilSettled, type TestCloud } from "./support/cloud.ts";
import { dbTargets } from "./support/db.ts";

describe.each(dbTargets())("two devices edit one field offline (%s)", (target) => {
  let t: TestCloud;
  beforeAll(async () => {
    t = await startTestCloud(target);
  });
  afterAll(() => t.stop());

  it("records one conflict with both values and the LWW winner, shown to both devices", async () => {
    const a = await t.agent("ambulance");
    const b = await t.agent("base");
    const report = a.agent.create({ title: "Pump 3", severity: 2 });
    await syncUntilSettled(a.agent);
    await b.agent.syncOnce();
    expect(b.agent.get(report.id)?.fields).toEqual({ title: "Pump 3", severity: 2 });

    // Offline: base edits first (lower HLC), ambulance later (higher HLC).
    b.agent.update(report.id, { severity: 3 });
    await new Promise((r) => setTimeout(r, 50));
    a.agent.update(report.id, { severity: 5 });

    // Ambulance reconnects first; base's older edit arrives after and loses.
    await syncUntilSettled(a.agent);
    await syncUntilSettled(b.agent);
    await a.agent.syncOnce();

    const rows = await t.testDb.db.query<{
      field: string;
      winner_value: unknown;
      loser_value: unknown;
      winner_device_id: string;
      loser_device_id: string;
    }>(
      "select field, winner_value, loser_value, winner_device_id, loser_device_id from conflicts where report_id = $1",
      [report.id],
    );
    expect(rows).toEqual([
      {
        field: "severity",
        winner_value: 5,
        loser_value: 3,
        winner_device_id: a.deviceId,
        loser_device_id: b.deviceId,
      },
    ]);

    for (const { agent } of [a, b]) {
      const conflicts = agent.conflicts();
      expect(conflicts).toHaveLength(1);
      expect(conflicts[0]).toMatchObject({
        reportId: report.id,
        field: "severity",
        winner: { deviceId: a.deviceId, value: 5 },
        loser: { deviceId: b.deviceId, value: 3 },
      });
      expect(agent.get(report.id)?.fields).toEqual({ title: "Pump 3", severity: 5 });
    }
    expect(a.agent.status()).toMatchObject({ applied: 2, superseded: 0, conflicts: 1 });
    expect(b.agent.status()).toMatchObject({ applied: 0, superseded: 1, conflicts: 1 });

    // Each device's CLI names its own side as "this device", the other by its id.
    const lineOf = async (path: string) =>
      (await runCli(["conflicts"], { EDGE_AGENT_DB: path })).stdout.trim();
    expect(await lineOf(a.path)).toMatch(
      new RegExp(`^${report.id} severity: kept 5 \\(this device\\) over 3 \\(${b.deviceId}\\) at `),
    );
    expect(await lineOf(b.path)).toMatch(
      new RegExp(`^${report.id} severity: kept 5 \\(${a.deviceId}\\) over 3 \\(this device\\) at `),
    );
  });
});
