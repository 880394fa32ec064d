import { execFile } from "node:child_process";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { checkEvidence } from "../core/evidence.ts";
import type { EvidenceBundle } from "../core/wire-custody.ts";

// A bundle as the release before salted digests exported it (format v1):
// two signing devices, a conflict, then the field `patient` erased, so its
// kept digests are the unsalted SHA-256 of the value. An auditor's file of
// that time must keep verifying with every later release.
const FIXTURE = join(import.meta.dirname, "fixtures/evidence-v1.json");
const CLI = join(import.meta.dirname, "../local/edge-sync.js");

const load = async (): Promise<EvidenceBundle> => JSON.parse(await readFile(FIXTURE, "utf8"));

describe("an evidence bundle exported before salted digests (v1)", () => {
  it("still verifies offline with `edge-sync verify-evidence`", async () => {
    expect((await load()).format).toBe("edge-sync.evidence.v1");
    const { stdout } = await promisify(execFile)(process.execPath, [
      CLI,
      "verify-evidence",
      FIXTURE,
    ]);
    expect(stdout).toMatch(/^VALID report .*: 4 entries, 3 signed/);
  });

  it("is refused when an erased value's kept digest, a value or a hash is changed", async () => {
    const bundle = await load();
    expect(checkEvidence(bundle).ok).toBe(true);
    const first = bundle.history[0]!;
    const kept = first.erasedDigests["after:patient"]!;
    const changes: [string, (b: EvidenceBundle) => void][] = [
      [
        "kept digest",
        (b) =>
          (b.history[0]!.erasedDigests["after:patient"] =
            (kept[0] === "0" ? "1" : "0") + kept.slice(1)),
      ],
      ["value", (b) => (b.history[2]!.after.title = "Pump station 4, open")],
      ["hash", (b) => (b.history[1]!.hash = first.hash)],
    ];
    for (const [name, change] of changes) {
      const changed = await load();
      change(changed);
      expect(checkEvidence(changed).ok, name).toBe(false);
    }
  });
});
