import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import type { Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { launchBrowser } from "./support/browser.ts";
import { startTestCloud, syncUntilSettled, type TestCloud } from "./support/cloud.ts";
import { dbTargets } from "./support/db.ts";

const ARTIFACTS = join(import.meta.dirname, "artifacts");

describe.each(dbTargets().slice(0, 1))("dashboard in a real browser (%s)", (target) => {
  let t: TestCloud;
  let browser: Browser;
  beforeAll(async () => {
    t = await startTestCloud(target);
    browser = await launchBrowser();
    await mkdir(ARTIFACTS, { recursive: true });
  }, 60_000);
  afterAll(async () => {
    await browser?.close();
    await t?.stop();
  });

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

    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
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
    await page.goto(t.cloud.url);
    const { clientId, clientSecret } = t.cloud.credentials.projects.demo!.admin;
    await page.fill("input[name=clientId]", clientId);
    await page.fill("input[name=clientSecret]", clientSecret);
    await page.click("#signin button");

    await page.waitForSelector("#devices tr.device");
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
    await page.screenshot({ path: join(ARTIFACTS, "dashboard-1280.png"), fullPage: true });

    await page.setViewportSize({ width: 390, height: 844 });
    await page.waitForTimeout(300);
    const overflow = await page.evaluate(
      () => document.documentElement.scrollWidth > window.innerWidth + 1,
    );
    expect(overflow).toBe(false);
    await page.screenshot({ path: join(ARTIFACTS, "dashboard-390.png"), fullPage: true });
    expect(errors).toEqual([]);
  }, 90_000);
});
