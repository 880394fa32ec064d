import { execFile } from "node:child_process";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MAX_FIELD_BYTES } from "../core/limits.ts";
import { ExportLinkSchema } from "../core/wire-custody.ts";
import { MAX_INLINE_BYTES } from "../functions/http/middleware.ts";
import { startTestCloud, syncUntilSettled, type TestCloud } from "./support/cloud.ts";
import { dbTargets } from "./support/db.ts";

/** Writes of about 217 kB each (the report's creation among them): about 7 MB of history. */
const EDITS = 32;
const CLI = join(import.meta.dirname, "../local/edge-sync.js");

/** Seven notes of nearly a field's limit each: a change of about 220 kB. */
const notesOf = (seed: number) =>
  Object.fromEntries(
    Array.from({ length: 7 }, (_, n) => [
      `note${n}`,
      Array.from(
        { length: MAX_FIELD_BYTES / 32 },
        (_, i) => `${seed}.${n}.${i} ${crypto.randomUUID()}`,
      )
        .join(" ")
        .slice(0, MAX_FIELD_BYTES - 1024),
    ]),
  );

// A report's evidence bundle holds every value its history wrote, so a few
// dozen large edits pass what a Lambda response can carry (6 MB). Such a
// bundle is handed out as a link.
describe.each(dbTargets())("an evidence bundle too large for a response (%s)", (target) => {
  let t: TestCloud;
  let auditor: string;
  let reportId: string;
  beforeAll(async () => {
    t = await startTestCloud(target);
    const { agent } = await t.agent("archive");
    const report = agent.create({ title: "Clinic 7 intake", ...notesOf(0) });
    reportId = report.id;
    for (let i = 1; i < EDITS; i++) agent.update(report.id, notesOf(i));
    await syncUntilSettled(agent);
    const { clientId, clientSecret } = t.cloud.credentials.projects.demo!.admin;
    auditor = await t.tokenFor(clientId, clientSecret);
  });
  afterAll(() => t.stop());

  it("answers 303 See Other with a download link, and the link needs no credentials", async () => {
    const response = await fetch(`${t.cloud.url}/v1/reports/${reportId}/evidence`, {
      headers: { authorization: `Bearer ${auditor}` },
      redirect: "manual",
    });
    expect(response.status).toBe(303);
    const link = ExportLinkSchema.parse(await response.json());
    expect(response.headers.get("location")).toBe(link.url);
    expect(link.bytes).toBeGreaterThan(MAX_INLINE_BYTES);
    const expiresIn = Date.parse(link.expiresAt) - Date.now();
    expect(expiresIn).toBeGreaterThan(10 * 60_000);
    expect(expiresIn).toBeLessThanOrEqual(15 * 60_000);

    const download = await fetch(link.url);
    expect(download.status).toBe(200);
    const text = await download.text();
    expect(Buffer.byteLength(text)).toBe(link.bytes);
    const bundle = JSON.parse(text);
    expect(bundle.report.id).toBe(reportId);
    expect(bundle.history).toHaveLength(EDITS);
  });

  it("is the whole bundle to a client that follows the link, and verifies offline", async () => {
    // fetch drops the Authorization header when a redirect leaves the API's origin.
    const response = await fetch(`${t.cloud.url}/v1/reports/${reportId}/evidence`, {
      headers: { authorization: `Bearer ${auditor}` },
    });
    expect(response.status).toBe(200);
    const file = join(t.dir, "large-evidence.json");
    await writeFile(file, await response.text());
    const { stdout } = await promisify(execFile)(process.execPath, [CLI, "verify-evidence", file]);
    expect(stdout).toMatch(
      new RegExp(`^VALID report ${reportId}: ${EDITS} entries, ${EDITS} signed by their devices`),
    );
  });

  it("gives no link to a caller without the auditor's or admin's role", async () => {
    const device = await t.createDevice("intruder");
    const token = await t.tokenFor(device.clientId, device.clientSecret);
    const response = await fetch(`${t.cloud.url}/v1/reports/${reportId}/evidence`, {
      headers: { authorization: `Bearer ${token}` },
      redirect: "manual",
    });
    expect(response.status).toBe(403);
    expect(response.headers.get("location")).toBeNull();
  });
});
