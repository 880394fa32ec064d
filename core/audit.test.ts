import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { auditHash, canonicalJson, digests, newSeed, valueDigest } from "./audit.ts";

describe("canonicalJson", () => {
  it("sorts keys at every depth and drops undefined", () => {
    expect(canonicalJson({ b: 1, a: { d: [1, { z: 1, y: 2 }], c: undefined } })).toBe(
      '{"a":{"d":[1,{"y":2,"z":1}]},"b":1}',
    );
  });

  it("gives equal bytes for equal values whatever their key order", () => {
    fc.assert(
      fc.property(fc.jsonValue(), (value) => {
        const shuffled = JSON.parse(JSON.stringify(value), function (this: unknown, _k, v) {
          return v && typeof v === "object" && !Array.isArray(v)
            ? Object.fromEntries(Object.entries(v).reverse())
            : v;
        });
        expect(canonicalJson(shuffled)).toBe(canonicalJson(value));
      }),
    );
  });
});

describe("auditHash", () => {
  const row = {
    prevHash: null,
    projectId: "p",
    changeId: "c",
    reportId: "r",
    actor: { type: "device", id: "d" },
    op: "upsert",
    hlc: "001:000000:d",
    outcome: "applied",
    code: null,
    fieldsApplied: ["title"],
    fieldsSuperseded: [],
    beforeDigests: digests({ title: null }),
    afterDigests: digests({ title: "secret name" }),
    receivedAt: "2026-11-22T13:00:00.000Z",
    appliedAt: "2026-11-22T13:00:01.000Z",
  };

  it("changes when any covered part changes, including the previous hash", () => {
    const base = auditHash(row);
    expect(auditHash({ ...row, prevHash: "x" })).not.toBe(base);
    expect(auditHash({ ...row, outcome: "partial" })).not.toBe(base);
    expect(auditHash({ ...row, afterDigests: digests({ title: "other" }) })).not.toBe(base);
  });

  it("covers values only through their digests", () => {
    expect(row.afterDigests.title).toBe(valueDigest("secret name"));
    expect(JSON.stringify(row)).not.toContain("secret name");
  });
});

describe("newSeed", () => {
  it("gives 16 random bytes each time, never one given before, across refills of its pool", () => {
    // 1,000 seeds take four refills of the 4 kB pool.
    const seeds = Array.from({ length: 1000 }, newSeed);
    expect(new Set(seeds).size).toBe(1000);
    for (const seed of seeds) expect(Buffer.from(seed, "base64url")).toHaveLength(16);
    // Bytes zeroed once used would show as a run of A's, were a seed cut from them.
    expect(seeds.filter((s) => s.startsWith("AAAAAAAA"))).toEqual([]);
  });
});
