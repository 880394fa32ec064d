import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { launchBrowser, openPage } from "./support/browser.ts";
import { startTestCloud, syncUntilSettled, type TestCloud } from "./support/cloud.ts";
import { dbTargets } from "./support/db.ts";

const ARTIFACTS = join(import.meta.dirname, "artifacts");

async function until<T>(what: string, probe: () => Promise<T | undefined>, ms = 60_000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`gave up waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/**
 * The dashboard in a real browser: devices, conflicts and search; then the
 * centre's view of a fleet in trouble (a change the database refuses five
 * times lands in the dead-letter queue and is redriven from the page, a
 * device whose pushes are refused shows as failing with the reason); last,
 * the page saying so when the API stops answering.
 */
describe.each(dbTargets().slice(0, 1))("dashboard in a real browser (%s)", (target) => {
  let t: TestCloud;
  let browser: Browser;
  beforeAll(async () => {
    t = await startTestCloud(target);
    browser = await launchBrowser();
    await mkdir(ARTIFACTS, { recursive: true });
  });
  afterAll(async () => {
    await browser?.close();
    await t?.stop();
  });

  async function signIn(page: Page) {
    await page.goto(t.cloud.url);
    const { clientId, clientSecret } = t.cloud.credentials.projects.demo!.admin;
    await page.fill("input[name=clientId]", clientId);
    await page.fill("input[name=clientSecret]", clientSecret);
    await page.click("#signin button");
    await page.waitForSelector("#devices tr.device");
  }

  it("signs in and shows both devices, their conflict side by side, and a searched report", async () => {
    // Two agents edit the same field offline: a conflict.
    const a = await t.agent("Ambulance 12");
    const b = await t.agent("Field Lab 3");
    const report = a.agent.create({ title: "Water pump leaking", severity: 2 });
    await syncUntilSettled(a.agent);
    await b.agent.syncOnce();
    // Concurrent edits: the higher clock wins, whichever device that is.
    const fromB = b.agent.update(report.id, { severity: 3 }).clocks.severity!;
    const fromA = a.agent.update(report.id, { severity: 5 }).clocks.severity!;
    const [winner, loser] = fromA > fromB ? ["5", "3"] : ["3", "5"];
    const [winnerName, loserName] =
      fromA > fromB ? ["Ambulance 12", "Field Lab 3"] : ["Field Lab 3", "Ambulance 12"];
    await syncUntilSettled(a.agent);
    await syncUntilSettled(b.agent);
    a.agent.create({ title: "Generator fuel low" });
    await syncUntilSettled(a.agent);

    const page = await openPage(browser, { width: 1280, height: 900 });
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(e.message));
    // Browsers ask for /favicon.ico on their own; the page asks for nothing that fails.
    page.on("response", (r) => {
      if (r.status() >= 400 && !r.url().endsWith("/favicon.ico"))
        errors.push(`${r.status()} ${r.url()}`);
    });
    page.on("console", (m) => {
      if (m.type() === "error" && !m.text().includes("404")) errors.push(m.text());
    });
    await signIn(page);
    expect(await page.isVisible("#signin")).toBe(false);
    const devices = await page.textContent("#devices");
    expect(devices).toContain("Ambulance 12");
    expect(devices).toContain("Field Lab 3");
    expect(devices).toMatch(/in sync/);

    await page.waitForSelector("#conflicts .conflict");
    const conflict = await page.textContent("#conflicts .conflict");
    expect(conflict).toContain("severity");
    const winnerText = await page.textContent("#conflicts .winner");
    const loserText = await page.textContent("#conflicts .loser");
    expect(winnerText).toMatch(new RegExp(`^winner: ${winner}${winnerName}`));
    expect(loserText).toMatch(new RegExp(`^loser: ${loser}${loserName}`));

    await page.fill("#search", "PUMP");
    await page.waitForFunction(() => {
      const text = document.querySelector("#reports")?.textContent ?? "";
      return text.includes("Water pump leaking") && !text.includes("Generator fuel low");
    });
    await page.click("#reports tr.report");
    await page.waitForSelector("#history li");
    expect(await page.textContent("#history")).toContain("Ambulance 12");

    // An erasure shows in the history: what, by whom, why.
    const erased = await t.api("/v1/erasures", {
      token: await t.adminToken(),
      body: { reportId: report.id, fields: ["severity"], reason: "subject access request 9" },
    });
    expect(erased.status).toBe(201);
    await page.click("#reports tr.report");
    await page.waitForSelector("#history li.erasure");
    // By name (a member, as devices are), and what it removed marked as such, not as null.
    expect(await page.textContent("#history li.erasure")).toMatch(
      /erased severity by demo admin \(subject access request 9\)/,
    );
    const history = await page.textContent("#history");
    expect(history).toMatch(/severity: \S+ → erased/);
    expect(history).not.toMatch(/severity: \S+ → null/);
    await page.waitForFunction(
      () =>
        document.querySelector("#reports")?.textContent?.includes("severity: erased") &&
        document.querySelector("#conflicts .winner")?.textContent?.startsWith("winner: erased") &&
        document.querySelector("#conflicts .loser")?.textContent?.startsWith("loser: erased"),
    );
    // The activity log: who registered the devices, by name.
    await page.click("#activity-details summary");
    await page.waitForSelector("#activity li.activity");
    const activity = await page.textContent("#activity");
    expect(activity).toContain("demo admin registered device Ambulance 12");
    expect(activity).toContain("demo admin registered device Field Lab 3 · scopes: all");
    await page.screenshot({ path: join(ARTIFACTS, "dashboard-1280.png"), fullPage: true });

    await page.setViewportSize({ width: 390, height: 844 });
    await page.waitForTimeout(300);
    const overflow = await page.evaluate(
      () => document.documentElement.scrollWidth > window.innerWidth + 1,
    );
    expect(overflow).toBe(false);
    await page.screenshot({ path: join(ARTIFACTS, "dashboard-390.png"), fullPage: true });
    expect(errors).toEqual([]);
  });

  it("dead-letters a change the database refuses 5 times, shows it, and applies it after a redrive from the page", async () => {
    const { agent, deviceId } = await t.agent("Clinic 9");
    const poisonedId = crypto.randomUUID();
    // A fault in the database that refuses one report until it is fixed.
    await t.testDb.db.exec(`
      create function refuse_poisoned() returns trigger language plpgsql as $$
        begin raise exception 'storage fault on this report'; end $$;
      create trigger poisoned before insert or update on reports for each row
        when (new.id = '${poisonedId}') execute function refuse_poisoned();`);
    agent.create({ title: "Vaccine fridge at 9 °C" }, poisonedId);
    const fine = agent.create({ title: "Fridge 2 fine" });
    await agent.syncOnce();
    const admin = await t.adminToken();
    const [dead] = await until("the change to reach the DLQ", async () => {
      const { body } = await t.api("/v1/dlq", { token: admin });
      return body.items.length > 0 ? body.items : undefined;
    });
    expect(dead).toMatchObject({ reportId: poisonedId, deviceId, reason: expect.any(String) });
    expect(dead.receiveCount).toBeGreaterThanOrEqual(5);
    expect((await t.api("/v1/status", { token: admin })).body.queue.dlq).toBe(1);
    // The other report, pushed in the same batch, was never held back by it.
    await until("the other report to apply", async () =>
      (await t.api(`/v1/reports/${fine.id}`, { token: admin })).status === 200 ? true : undefined,
    );

    // A second device whose every push is refused.
    const device = await t.createDevice("Ambulance 4");
    const token = await t.tokenFor(device.clientId, device.clientSecret);
    const refused = await t.api("/v1/changes", {
      token,
      body: { changes: [{ reportId: crypto.randomUUID(), op: "upsert" }] },
    });
    expect(refused.status).toBe(400);
    const scoped = await t.api(`/v1/devices/${device.id}/scopes`, {
      method: "PUT",
      token: admin,
      body: { scopes: ["depot-7", "depot-2"] },
    });
    expect(scoped.status).toBe(200);

    const page = await openPage(browser, { width: 1280, height: 1000 });
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(e.message));
    await signIn(page);
    await page.waitForSelector("#dlq tr.dead-letter");
    const dlqText = await page.textContent("#dlq");
    expect(dlqText).toContain(dead.changeId.slice(0, 8));
    expect(dlqText).toContain("Clinic 9");
    expect(await page.textContent("#failing")).toMatch(/Ambulance 4 \(validation_failed\)/);
    const row = page.locator("#devices tr.device", { hasText: "Ambulance 4" });
    expect(await row.locator("td.state").textContent()).toMatch(/^failing.*validation_failed/);
    expect(await row.locator('td[data-label="Scopes"]').textContent()).toBe("depot-2, depot-7");
    await page.screenshot({ path: join(ARTIFACTS, "fleet-failing-and-dlq.png"), fullPage: true });

    // The fault is fixed; the admin redrives the change from the page.
    await t.testDb.db.exec("drop trigger poisoned on reports; drop function refuse_poisoned();");
    await page.click("#dlq button.redrive");
    await page.waitForFunction(() =>
      document.querySelector("#dlq-result")?.textContent?.startsWith("1 change"),
    );
    // Who put which change back is in the activity log, and on the page.
    const [redriven] = (await t.api("/v1/activity?order=newest&limit=1", { token: admin })).body
      .items;
    expect(redriven).toMatchObject({
      action: "dlq.redrive",
      details: {
        moved: 1,
        changes: [{ messageId: dead.messageId, changeId: dead.changeId, reportId: poisonedId }],
      },
    });
    expect((await t.api("/v1/audit/verify", { token: admin })).body.activity).toMatchObject({
      ok: true,
    });
    await page.click("#activity-details summary");
    await page.waitForSelector("#activity li.activity");
    expect(await page.textContent("#activity li.activity")).toMatch(
      new RegExp(
        `put dead-lettered changes back on the queue · moved: 1 · changes: ${dead.changeId.slice(0, 8)}$`,
      ),
    );
    await syncUntilSettled(agent);
    expect(agent.status()).toMatchObject({ pending: 0, sent: 0, applied: 2 });
    expect((await t.api(`/v1/reports/${poisonedId}`, { token: admin })).body.fields).toEqual({
      title: "Vaccine fridge at 9 °C",
    });
    await until("the DLQ to empty", async () => {
      const { body } = await t.api("/v1/dlq", { token: admin });
      return body.items.length === 0 ? true : undefined;
    });
    expect(errors).toEqual([]);
  });

  it("says when the API stops answering, and since when its data is", async () => {
    const page = await openPage(browser, { width: 1280, height: 800 });
    await signIn(page);
    expect(await page.isVisible("#stale")).toBe(false);
    await t.down();
    await page.waitForSelector("#stale", { state: "visible" });
    expect(await page.textContent("#stale")).toMatch(/not answering.*shows data from/);
    // What it showed is still there, marked as old.
    expect(await page.textContent("#devices")).toContain("Clinic 9");
    await page.screenshot({ path: join(ARTIFACTS, "dashboard-stale.png"), fullPage: true });
  });
});
