import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { saltOf, valueDigest } from "../core/audit.ts";
import { checkEvidence } from "../core/evidence.ts";
import { EdgeAgent } from "../edge-agent/agent.ts";
import { runRetention } from "../functions/app/erasure.ts";
import { provision } from "../local/provision.ts";
import { startTestCloud, syncUntilSettled, type TestCloud } from "./support/cloud.ts";
import { dbTargets } from "./support/db.ts";

/** Every byte of an agent's files, the WAL included, as text. */
function rawBytes(path: string): string {
  return [path, `${path}-wal`]
    .filter((p) => existsSync(p))
    .map((p) => readFileSync(p).toString("latin1"))
    .join("");
}

describe.each(dbTargets())("erasure (%s)", (target) => {
  let t: TestCloud;
  beforeAll(async () => {
    t = await startTestCloud(target);
  });
  afterAll(() => t.stop());

  it("removes the values from the cloud and from both agents' files, while verify still passes", async () => {
    const { project, devices } = await provision(t.cloud.url, t.cloud.credentials.operator, {
      project: "clinic",
      devices: ["ward tablet", "visiting nurse"],
    });
    const admin = await t.tokenFor(project.admin.clientId, project.admin.clientSecret);
    const paths = devices.map((d) => join(t.dir, `${d.name.replace(/\W+/g, "-")}.db`));
    const [ward, nurse] = (await Promise.all(
      devices.map(async (d, i) => {
        const agent = EdgeAgent.open(paths[i]!);
        await agent.init(t.cloud.url, d.clientId, d.clientSecret);
        return agent;
      }),
    )) as [EdgeAgent, EdgeAgent];

    // Two secrets, from two devices, one of them in a conflict.
    const report = ward.create({ patient: "Jane Roe, born 1987-03-14", ward: "B2", pain: 6 });
    await syncUntilSettled(ward);
    await syncUntilSettled(nurse);
    nurse.update(report.id, { patient: "Jane Q. Roe, room 12" });
    ward.update(report.id, { patient: "Jane Roe (transferred)", pain: 4 });
    for (const agent of [ward, nurse, ward, nurse]) await syncUntilSettled(agent);
    const secrets = ["Jane Roe", "Jane Q. Roe"];
    const db = t.testDb.db;
    const cloudText = async () =>
      JSON.stringify(
        await Promise.all([
          db.query("select fields from reports where id = $1", [report.id]),
          db.query("select before, after, signed_change from audit_log where report_id = $1", [
            report.id,
          ]),
          db.query("select winner_value, loser_value from conflicts where report_id = $1", [
            report.id,
          ]),
        ]),
      );
    expect(await cloudText()).toContain("Jane Roe");
    expect(rawBytes(paths[1]!)).toContain("Jane Q. Roe");
    type SaltedRow = {
      seq: number;
      seed: string | null;
      salts: Record<string, string>;
      erased_digests: Record<string, string>;
    };
    const saltedRows = () =>
      db.query<SaltedRow>(
        "select seq, seed, salts, erased_digests from audit_log where report_id = $1 and op <> 'erase' order by seq",
        [report.id],
      );
    const seeds = new Map((await saltedRows()).map((r) => [r.seq, r.seed]));

    const requested = await t.api("/v1/erasures", {
      token: admin,
      body: { reportId: report.id, fields: ["patient"], reason: "data subject request 42" },
    });
    expect(requested.status).toBe(201);
    expect(requested.body).toMatchObject({
      reportId: report.id,
      fields: ["patient"],
      reason: "data subject request 42",
      devicesPending: 2,
      devicesDone: 0,
    });

    // Each agent erases on the pull that delivers it; the pull after says so.
    for (const agent of [ward, nurse]) {
      await agent.syncOnce();
      await agent.syncOnce();
    }
    const erasure = await t.api(`/v1/erasures/${requested.body.id}`, { token: admin });
    expect(erasure.body).toMatchObject({ devicesPending: 0, devicesDone: 2 });

    const text = await cloudText();
    for (const agent of [ward, nurse]) {
      expect(agent.get(report.id)?.fields).toEqual({ patient: null, ward: "B2", pain: 4 });
      agent.close();
    }
    for (const secret of secrets) {
      expect(text).not.toContain(secret);
      for (const path of paths) expect(rawBytes(path), path).not.toContain(secret);
    }
    // The digest an erasure keeps of a value confirms no guess of it: the
    // salt it was made with is gone with the value (a value of a few likely
    // ones could otherwise be found again by hashing each guess). With the
    // row's old seed, one of the guesses does match: the digest is the value's.
    const guesses = ["Jane Roe, born 1987-03-14", "Jane Q. Roe, room 12", "Jane Roe (transferred)"];
    let kept = 0;
    for (const row of await saltedRows()) {
      expect(row.seed).toBeNull();
      for (const [key, digest] of Object.entries(row.erased_digests)) {
        kept++;
        const label = key.replace(/^signed:/, "after:");
        expect(row.salts[label]).toBeUndefined();
        for (const guess of guesses) {
          expect(digest).not.toBe(valueDigest(guess));
          for (const salt of Object.values(row.salts))
            expect(digest).not.toBe(valueDigest(guess, salt));
        }
        const oldSalt = saltOf({ seed: seeds.get(row.seq)! }, label);
        expect(guesses.map((g) => valueDigest(g, oldSalt))).toContain(digest);
      }
    }
    expect(kept).toBeGreaterThanOrEqual(3);

    const read = await t.api(`/v1/reports/${report.id}`, { token: admin });
    expect(read.body).toMatchObject({ fields: { patient: null, ward: "B2" }, erased: ["patient"] });
    const history = (await t.api(`/v1/reports/${report.id}/history`, { token: admin })).body.items;
    expect(history.at(-1)).toMatchObject({
      op: "erase",
      actor: { type: "member" },
      fieldsApplied: ["patient"],
    });
    // What was erased says so, apart from values written as null.
    expect(history[0]).toMatchObject({ before: { patient: null }, erased: ["after:patient"] });
    expect(history[0].erased).toEqual(["after:patient"]);
    const conflicts = await t.api(`/v1/conflicts?reportId=${report.id}`, { token: admin });
    expect(conflicts.body.items).toMatchObject([
      {
        field: "patient",
        winner: { value: null, erased: true },
        loser: { value: null, erased: true },
      },
    ]);
    expect(await t.api("/v1/audit/verify", { token: admin })).toMatchObject({
      body: { ok: true },
    });
    const evidence = await t.api(`/v1/reports/${report.id}/evidence`, { token: admin });
    expect(checkEvidence(evidence.body)).toMatchObject({ ok: true, problems: [] });
    expect(JSON.stringify(evidence.body)).not.toContain("Jane Roe");
  });

  it("does not bring back a value written before the erasure that was still in the queue", async () => {
    const admin = await t.adminToken();
    const { agent, path } = await t.agent("triage tablet");
    const report = agent.create({ patient: "Jane Roe", bed: "4" });
    await syncUntilSettled(agent);
    // The update reaches the queue and waits there while the admin erases.
    await t.cloud.setConsumerRunning(false);
    agent.update(report.id, { patient: "Jane Q. Roe, allergic to penicillin", bed: "5" });
    await agent.syncOnce();
    const erased = await t.api("/v1/erasures", {
      token: admin,
      body: { reportId: report.id, fields: ["patient"], reason: "data subject request 43" },
    });
    expect(erased.status).toBe(201);
    await t.cloud.setConsumerRunning(true);
    await syncUntilSettled(agent);
    await agent.syncOnce();

    const read = await t.api(`/v1/reports/${report.id}`, { token: admin });
    expect(read.body).toMatchObject({ fields: { patient: null, bed: "5" }, erased: ["patient"] });
    expect(agent.get(report.id)?.fields).toEqual({ patient: null, bed: "5" });
    const stored = JSON.stringify(
      await t.testDb.db.query(
        `select r.fields, a.before, a.after, a.signed_change from reports r
           join audit_log a on a.project_id = r.project_id and a.report_id = r.id where r.id = $1`,
        [report.id],
      ),
    );
    expect(stored).toContain('"bed":"5"');
    expect(stored).not.toContain("Jane");
    expect(rawBytes(path)).not.toContain("Jane Q. Roe");
    expect(await t.api("/v1/audit/verify", { token: admin })).toMatchObject({ body: { ok: true } });
  });

  it("keeps nothing a device writes, unaware, to a report retention has erased", async () => {
    const admin = await t.adminToken();
    const office = await t.agent("office desk");
    const van = await t.agent("service van");
    const report = office.agent.create({ title: "Leak at 4 Elm Road", contact: "Sam Field" });
    await syncUntilSettled(office.agent);
    await syncUntilSettled(van.agent);
    office.agent.delete(report.id);
    await syncUntilSettled(office.agent);
    const keep = (days: number | null) =>
      t.api("/v1/project", { method: "PATCH", token: admin, body: { retainDeletedDays: days } });
    expect((await keep(0)).status).toBe(200);
    try {
      const {
        made: [purged],
      } = await runRetention(t.testDb.db, Date.now);
      expect(purged).toMatchObject({ reportId: report.id, reason: "retention" });
      // The van, offline since before the delete, writes to the report
      // after retention ran (its clock later than the erasure's).
      await new Promise((r) => setTimeout(r, 5));
      van.agent.update(report.id, { contact: "Jane Roe, 0700 111 222", notes: "Jane's flat" });
      await syncUntilSettled(van.agent);
      await van.agent.syncOnce();
    } finally {
      await keep(null);
    }
    const stored = JSON.stringify(
      await Promise.all([
        t.testDb.db.query("select fields from reports where id = $1", [report.id]),
        t.testDb.db.query(
          "select before, after, signed_change from audit_log where report_id = $1",
          [report.id],
        ),
      ]),
    );
    expect(stored).not.toContain("Jane");
    expect(van.agent.get(report.id)).toMatchObject({ deleted: true });
    van.agent.close();
    expect(rawBytes(van.path)).not.toContain("Jane");
    expect(await t.api("/v1/audit/verify", { token: admin })).toMatchObject({ body: { ok: true } });
  });

  it("refuses an erasure of another project's or no report, and from anyone but an admin", async () => {
    const admin = await t.adminToken();
    const missing = await t.api("/v1/erasures", {
      token: admin,
      body: { reportId: crypto.randomUUID(), reason: "request" },
    });
    expect(missing.status).toBe(404);
    expect(
      (await t.api("/v1/erasures", { token: admin, body: { reportId: "x", reason: "" } })).status,
    ).toBe(400);
    const device = await t.createDevice("not an admin");
    const token = await t.tokenFor(device.clientId, device.clientSecret);
    expect(
      (await t.api("/v1/erasures", { token, body: { reportId: crypto.randomUUID(), reason: "r" } }))
        .status,
    ).toBe(403);
  });
});
