import { execFile } from "node:child_process";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { checkEvidence } from "../core/evidence.ts";
import type { EvidenceBundle } from "../core/wire-custody.ts";
import { EdgeAgent } from "../edge-agent/agent.ts";
import { provision } from "../local/provision.ts";
import { startTestCloud, syncUntilSettled, type TestCloud } from "./support/cloud.ts";
import { dbTargets } from "./support/db.ts";

const CLI = join(import.meta.dirname, "../local/edge-sync.js");

/** `npx edge-sync verify-evidence FILE`, as an auditor runs it. */
async function verifyEvidence(file: string): Promise<{ code: number; stdout: string }> {
  try {
    const { stdout } = await promisify(execFile)(process.execPath, [CLI, "verify-evidence", file]);
    return { code: 0, stdout };
  } catch (error) {
    const e = error as { code: number; stdout: string };
    return { code: e.code, stdout: e.stdout };
  }
}

/** The text with the one character at `at` replaced by another of the same kind. */
function flip(text: string, at: number): string {
  const c = text[at]!;
  const alphabet = /[0-9a-f]/.test(c)
    ? "0123456789abcdef"
    : /[A-Za-z0-9_-]/.test(c)
      ? "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
      : "xyz";
  const other = alphabet[(alphabet.indexOf(c) + 1) % alphabet.length]!;
  return text.slice(0, at) + other + text.slice(at + 1);
}

describe.each(dbTargets())("evidence bundles (%s)", (target) => {
  let t: TestCloud;
  let file: string;
  let text: string;
  let bundle: EvidenceBundle;
  beforeAll(async () => {
    t = await startTestCloud(target);
    // Two signing devices edit one report, concurrently once: a conflict.
    const { project, devices } = await provision(t.cloud.url, t.cloud.credentials.operator, {
      project: "inspections",
      devices: ["north", "south"],
    });
    const agents = await Promise.all(
      devices.map(async (d) => {
        const agent = EdgeAgent.open(join(t.dir, `${d.name}.db`));
        await agent.init(t.cloud.url, d.clientId, d.clientSecret);
        return agent;
      }),
    );
    const [north, south] = agents as [EdgeAgent, EdgeAgent];
    const report = north.create({ title: "Pump station 4", crew: 3 });
    await syncUntilSettled(north);
    await syncUntilSettled(south);
    south.update(report.id, { title: "Pump station 4, flooded", tags: ["water"] });
    north.update(report.id, { title: "Pump station 4, closed" });
    await syncUntilSettled(north);
    await syncUntilSettled(south);
    await syncUntilSettled(north);
    for (const agent of agents) agent.close();

    const auditor = await t.tokenFor(project.admin.clientId, project.admin.clientSecret);
    const exported = await t.api(`/v1/reports/${report.id}/evidence`, { token: auditor });
    expect(exported.status).toBe(200);
    bundle = exported.body;
    text = JSON.stringify(bundle);
    file = join(t.dir, "evidence.json");
    await writeFile(file, text);
    // The auditor's machine: the cloud is gone.
    await t.down();
  });
  afterAll(() => t.stop());

  it("verifies with the cloud stopped: every hash, link and signature, and the report its history produces", async () => {
    expect(bundle.history).toHaveLength(3);
    expect(bundle.history.every((e) => e.sig !== null)).toBe(true);
    expect(Object.keys(bundle.devices)).toHaveLength(2);
    const result = await verifyEvidence(file);
    expect(result.stdout).toMatch(/^VALID report .*: 3 entries, 3 signed/);
    expect(result.code).toBe(0);
  });

  it("exits 3 naming the entry when one byte of a value, a hash or a signature is changed", async () => {
    const last = bundle.history[2]!;
    const cases = [
      {
        name: "value",
        at: text.indexOf("Pump station 4, closed", text.indexOf('"history":')) + 5,
        says: /seq \d+/,
      },
      { name: "hash", at: text.indexOf(bundle.history[1]!.hash!) + 10, says: /seq \d+/ },
      { name: "signature", at: text.indexOf(last.sig!) + 20, says: new RegExp(`seq ${last.seq}`) },
    ];
    for (const { name, at, says } of cases) {
      const changed = join(t.dir, `evidence-${name}.json`);
      await writeFile(changed, flip(text, at));
      const result = await verifyEvidence(changed);
      expect(result.code, name).toBe(3);
      expect(result.stdout, name).toMatch(/^INVALID/);
      expect(result.stdout, name).toMatch(says);
    }
  });

  it("finds any one changed character in any value, hash or signature of the bundle", () => {
    // Where each value, hash and signature sits in the file: a value found
    // as `"field":value` after the start of the object that holds it.
    const spans: [number, number][] = [];
    const mark = (needle: string, after = 0, key?: string) => {
      const prefix = key === undefined ? "" : `${JSON.stringify(key)}:`;
      const at = text.indexOf(prefix + needle, after);
      expect(at, needle).toBeGreaterThanOrEqual(0);
      spans.push([at + prefix.length, at + prefix.length + needle.length]);
    };
    const values = (object: Record<string, unknown>, from: number) => {
      for (const [key, value] of Object.entries(object)) mark(JSON.stringify(value), from, key);
    };
    for (const entry of bundle.history) {
      const at = text.indexOf(`"changeId":"${entry.changeId}"`);
      values(entry.after, text.indexOf('"after":', at));
      values(entry.before, text.indexOf('"before":', at));
      values(entry.signedChange?.fields ?? {}, text.indexOf('"signedChange":', at));
      mark(entry.hash!);
      mark(entry.sig!);
    }
    values(bundle.report.fields, text.indexOf('"report":'));
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: spans.length - 1 }),
        fc.double({ min: 0, max: 1, noNaN: true, maxExcluded: true }),
        (span, where) => {
          const [from, to] = spans[span]!;
          // Inside the value: not its quotes, which would only break the JSON.
          const inner = text[from] === '"' ? [from + 1, to - 1] : [from, to];
          const at = inner[0]! + Math.floor(where * (inner[1]! - inner[0]!));
          let changed: unknown;
          try {
            changed = JSON.parse(flip(text, at));
          } catch {
            return; // no longer JSON: the CLI says so and exits 3
          }
          expect(checkEvidence(changed).ok).toBe(false);
        },
      ),
      { numRuns: 300 },
    );
  });

  it("refuses a bundle with an entry taken out or the report's state changed", () => {
    const without = { ...bundle, history: [bundle.history[0], bundle.history[2]] };
    expect(checkEvidence(without).problems.join("\n")).toMatch(/prev_hash/);
    const truncated = { ...bundle, history: bundle.history.slice(0, 2) };
    expect(checkEvidence(truncated).problems.join("\n")).toMatch(/head the database recorded/);
    const edited = {
      ...bundle,
      report: { ...bundle.report, fields: { title: "Nothing happened" } },
    };
    expect(checkEvidence(edited).problems.join("\n")).toMatch(
      /fields .* is not what its history produces/,
    );
  });
});
