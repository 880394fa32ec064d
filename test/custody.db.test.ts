import type { JsonWebKey } from "node:crypto";
import { join } from "node:path";
import { SendMessageCommand } from "@aws-sdk/client-sqs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type AuditRecord, hashAuditRecord } from "../core/audit.ts";
import type { Change } from "../core/change.ts";
import { checkEvidence } from "../core/evidence.ts";
import { formatHlc } from "../core/hlc.ts";
import { contentOf, newDeviceKey, privateKeyOf, signChange } from "../core/signature.ts";
import { EdgeAgent } from "../edge-agent/agent.ts";
import { createSqsClient } from "../functions/adapters/queue.ts";
import { applyChanges } from "../functions/app/apply/apply-changes.ts";
import { provision } from "../local/provision.ts";
import { startTestCloud, syncUntilSettled, type TestCloud } from "./support/cloud.ts";
import { dbTargets } from "./support/db.ts";

describe.each(dbTargets())("chain of custody: device-signed changes (%s)", (target) => {
  let t: TestCloud;
  beforeAll(async () => {
    t = await startTestCloud(target);
  });
  afterAll(() => t.stop());

  /** A project of its own (verify is per project) with one signing agent. */
  async function signingSite(name: string) {
    const { project, devices } = await provision(t.cloud.url, t.cloud.credentials.operator, {
      project: name,
      devices: ["field tablet"],
    });
    const device = devices[0]!;
    const agent = EdgeAgent.open(join(t.dir, `${name.replace(/\W+/g, "-")}.db`));
    await agent.init(t.cloud.url, device.clientId, device.clientSecret);
    const admin = await t.tokenFor(project.admin.clientId, project.admin.clientSecret);
    return { projectId: project.id, device, agent, admin };
  }

  const verify = async (admin: string) => (await t.api("/v1/audit/verify", { token: admin })).body;
  const evidenceOf = async (reportId: string, admin: string) =>
    checkEvidence((await t.api(`/v1/reports/${reportId}/evidence`, { token: admin })).body);

  /** A change of `deviceId`, signed with `jwk` unless it is null. */
  function change(deviceId: string, fields: Record<string, string>, jwk?: JsonWebKey | null) {
    const unsigned: Change = {
      changeId: crypto.randomUUID(),
      reportId: crypto.randomUUID(),
      op: "upsert",
      hlc: formatHlc({ wall: Date.now(), counter: 0, node: deviceId }),
      fields,
      base: {},
    };
    if (!jwk) return unsigned;
    return { ...unsigned, sig: signChange(privateKeyOf(jwk), contentOf(unsigned)) };
  }

  it("signs every change an agent writes; the audit keeps each signature and verify checks them", async () => {
    const { agent, admin } = await signingSite("signed site");
    expect(agent.status().signingKey).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const report = agent.create({ title: "Signed at the pump", severity: 2 });
    agent.update(report.id, { severity: 3 });
    agent.delete(report.id);
    await syncUntilSettled(agent);
    agent.close();

    const history = await t.api(`/v1/reports/${report.id}/history`, { token: admin });
    expect(history.body.items).toHaveLength(3);
    for (const entry of history.body.items) expect(entry.sig).toMatch(/^[A-Za-z0-9_-]{86}$/);
    expect(await verify(admin)).toEqual({
      ok: true,
      checked: 3,
      signed: 3,
      unsigned: 0,
      complete: true,
      nextCursor: null,
      // The project's creation and its device's registration.
      activity: { ok: true, checked: 2 },
    });
  });

  it("verifies a project too large for one call in parts, each going on where the last stopped", async () => {
    const { agent, admin } = await signingSite("verified in parts");
    for (let i = 0; i < 3; i++) agent.create({ title: `report ${i}` });
    const report = agent.create({ title: "edited" });
    agent.update(report.id, { severity: 1 });
    await syncUntilSettled(agent);
    agent.close();
    const parts = [];
    let cursor = "";
    do {
      const res = await t.api(`/v1/audit/verify?limit=2${cursor && `&cursor=${cursor}`}`, {
        token: admin,
      });
      expect(res.status).toBe(200);
      parts.push(res.body);
      cursor = res.body.nextCursor ?? "";
    } while (cursor);
    expect(parts.map((p) => [p.ok, p.checked, p.signed, p.complete])).toEqual([
      [true, 2, 2, false],
      [true, 2, 2, false],
      [true, 1, 1, true],
    ]);
    const refused = await t.api("/v1/audit/verify?cursor=forged", { token: admin });
    expect(refused).toMatchObject({ status: 400, body: { error: { code: "validation_failed" } } });
  });

  it("refuses, from a device with a key, a change without its signature or with a wrong one", async () => {
    const device = await t.createDevice("keyed by hand");
    const token = await t.tokenFor(device.clientId, device.clientSecret);
    const { privateJwk, publicJwk } = newDeviceKey();
    const registered = await t.api("/v1/devices/me/key", { token, body: { publicKey: publicJwk } });
    expect(registered.status).toBe(201);

    const good = change(device.id, { title: "signed" }, privateJwk);
    const missing = change(device.id, { title: "not signed" }, null);
    const stranger = change(
      device.id,
      { title: "signed by another key" },
      newDeviceKey().privateJwk,
    );
    const altered = { ...change(device.id, { title: "as signed" }, privateJwk) };
    altered.fields = { title: "altered after signing" };
    const pushed = await t.api("/v1/changes", {
      token,
      body: { changes: [good, missing, stranger, altered] },
    });
    expect(pushed.status).toBe(202);
    expect(pushed.body.accepted).toEqual([good.changeId]);
    expect(pushed.body.rejected).toEqual(
      [missing, stranger, altered].map((c) => ({
        changeId: c.changeId,
        code: "signature_invalid",
        message: expect.any(String),
      })),
    );
  });

  it("keeps taking the changes of a device without a key, recorded as unsigned", async () => {
    const device = await t.createDevice("no key");
    const token = await t.tokenFor(device.clientId, device.clientSecret);
    const unsigned = change(device.id, { title: "from an old agent" }, null);
    expect(
      (await t.api("/v1/changes", { token, body: { changes: [unsigned] } })).body,
    ).toMatchObject({ accepted: [unsigned.changeId] });
    const admin = await t.adminToken();
    const deadline = Date.now() + 60_000;
    let items: { sig: string | null }[] = [];
    while (items.length === 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
      items =
        (await t.api(`/v1/reports/${unsigned.reportId}/history`, { token: admin })).body.items ??
        [];
    }
    expect(items).toEqual([expect.objectContaining({ outcome: "applied", sig: null })]);
    const verified = await verify(admin);
    expect(verified).toMatchObject({ ok: true });
    expect(verified.unsigned).toBeGreaterThan(0);
  });

  it("names the audit row a database superuser edited behind the trigger, even with its hash recomputed", async () => {
    const { projectId, agent, admin } = await signingSite("edited site");
    const report = agent.create({ title: "Leak at valve 7", severity: 4 });
    await syncUntilSettled(agent);
    agent.close();
    const db = t.testDb.db;
    type Row = AuditRecord & { seq: number };
    const [row] = (await db.query<Row>(
      `select seq, project_id as "projectId", change_id as "changeId", report_id as "reportId",
              json_build_object('type', actor_type, 'id', actor_id) as actor, op, hlc, outcome, code, message,
              fields_applied as "fieldsApplied", fields_superseded as "fieldsSuperseded", before, after,
              received_at as "receivedAt", applied_at as "appliedAt", prev_hash as "prevHash", sig,
              signed_change as "signedChange", seed, salts
         from audit_log where report_id = $1`,
      [report.id],
    )) as [Row];
    expect(await verify(admin)).toMatchObject({ ok: true, signed: 1 });

    // What the cloud's own code could do: change the value, and the hash and
    // chain head to match, as if the device had sent it.
    const forged: Row = {
      ...row,
      after: { ...row.after, severity: 1 },
      receivedAt: new Date(row.receivedAt).toISOString(),
      appliedAt: new Date(row.appliedAt).toISOString(),
    };
    const hash = hashAuditRecord(forged);
    await db.exec("alter table audit_log disable trigger audit_log_append_only");
    try {
      await db.query("update audit_log set after = $2::jsonb, hash = $3 where seq = $1", [
        row.seq,
        JSON.stringify(forged.after),
        hash,
      ]);
    } finally {
      await db.exec("alter table audit_log enable trigger audit_log_append_only");
    }
    await db.query("update reports set chain_head = $3 where project_id = $1 and id = $2", [
      projectId,
      report.id,
      hash,
    ]);
    expect(await verify(admin)).toMatchObject({
      ok: false,
      firstBadSeq: row.seq,
      problem: "field severity does not hold the value its device signed",
    });
    // The report's evidence, checked offline, names the same entry.
    expect((await evidenceOf(report.id, admin)).problems).toContain(
      `entry seq ${row.seq} (change ${row.changeId}): field severity does not hold the value its device signed`,
    );
  });

  it("notices the last entries of a chain taken away behind the trigger", async () => {
    const { agent, admin } = await signingSite("truncated site");
    const report = agent.create({ title: "Valve 9 inspected" });
    agent.update(report.id, { title: "Valve 9 replaced" });
    await syncUntilSettled(agent);
    agent.close();
    const db = t.testDb.db;
    const seqs = (
      await db.query<{ seq: number }>(
        "select seq from audit_log where report_id = $1 order by seq",
        [report.id],
      )
    ).map((r) => r.seq);
    expect(seqs).toHaveLength(2);
    await db.exec("alter table audit_log disable trigger audit_log_append_only");
    try {
      await db.query("delete from audit_log where seq = $1", [seqs[1]]);
    } finally {
      await db.exec("alter table audit_log enable trigger audit_log_append_only");
    }
    expect(await verify(admin)).toMatchObject({
      ok: false,
      firstBadSeq: seqs[0],
      problem: "its report's chain ends here, but it had entries after this one",
    });
  });

  it("fails verify on a change the cloud side applied for a keyed device without its key", async () => {
    const { projectId, device, agent, admin } = await signingSite("forged site");
    agent.close();
    const unsigned = {
      projectId,
      deviceId: device.id,
      receivedAt: new Date().toISOString(),
      change: change(device.id, { title: "never written by the device" }, null),
    };
    await applyChanges(t.testDb.db, [unsigned]);
    const first = await verify(admin);
    const [{ seq }] = (await t.testDb.db.query<{ seq: number }>(
      "select seq from audit_log where change_id = $1",
      [unsigned.change.changeId],
    )) as [{ seq: number }];
    expect(first).toMatchObject({
      ok: false,
      firstBadSeq: seq,
      problem: "unsigned, but its device had registered a signing key",
    });
    expect((await evidenceOf(unsigned.change.reportId, admin)).problems).toContain(
      `entry seq ${seq} (change ${unsigned.change.changeId}): unsigned, but its device had registered a signing key`,
    );

    // Signed, but with a key that is not the device's.
    const other = await signingSite("forged with another key");
    other.agent.close();
    const stranger = {
      projectId: other.projectId,
      deviceId: other.device.id,
      receivedAt: new Date().toISOString(),
      change: change(other.device.id, { title: "signed by a stranger" }, newDeviceKey().privateJwk),
    };
    await applyChanges(t.testDb.db, [stranger]);
    expect(await verify(other.admin)).toMatchObject({
      ok: false,
      problem: "the signature is not its device's signature of this change",
    });
  });

  it("checks the signature in the consumer when ingest could not read the device's key", async () => {
    const { projectId, device, agent } = await signingSite("unchecked site");
    const bad = change(
      device.id,
      { title: "queued while the database was down" },
      newDeviceKey().privateJwk,
    );
    // What ingest queues when the database does not answer: the change, marked unchecked.
    const sqs = createSqsClient("us-east-1", t.cloud.config.sqsEndpoint);
    await sqs.send(
      new SendMessageCommand({
        QueueUrl: t.cloud.config.queueUrl,
        MessageBody: JSON.stringify({
          projectId,
          deviceId: device.id,
          receivedAt: new Date().toISOString(),
          change: bad,
          keyUnchecked: true,
        }),
        MessageGroupId: bad.reportId,
        MessageDeduplicationId: bad.changeId,
      }),
    );
    sqs.destroy();
    const deadline = Date.now() + 60_000;
    let rows: { outcome: string; code: string | null }[] = [];
    while (rows.length === 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
      rows = await t.testDb.db.query("select outcome, code from audit_log where change_id = $1", [
        bad.changeId,
      ]);
    }
    expect(rows).toEqual([{ outcome: "rejected", code: "signature_invalid" }]);
    expect(await t.testDb.db.query("select 1 from reports where id = $1", [bad.reportId])).toEqual(
      [],
    );
    agent.close();
  });

  it("refuses to init a second database for a device whose key another one registered, leaving it empty", async () => {
    const { device, agent } = await signingSite("restored elsewhere");
    agent.close();
    const second = EdgeAgent.open(join(t.dir, "second-database.db"));
    await expect(
      second.init(t.cloud.url, device.clientId, device.clientSecret),
    ).rejects.toMatchObject({ code: "key_conflict" });
    expect(second.status()).toMatchObject({ deviceId: null, signingKey: null });
    second.close();
  });
});
