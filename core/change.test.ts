import { describe, expect, it } from "vitest";
import { checkChange, readableChangeId } from "./change.ts";
import { formatHlc } from "./hlc.ts";
import { MAX_FIELD_BYTES } from "./limits.ts";

const deviceId = "6f1c2d9e-4b7a-4f1e-9c3d-2a5b8e7f0a11";
const now = 1_795_352_400_000;
const context = { deviceId, serverNowMs: now, maxClockSkewMs: 300_000 };
const changeId = "0193a1b2-0000-7000-8000-000000000001";
const valid = {
  changeId,
  reportId: "0c9d8e7f-6a5b-4c3d-8e2f-1a0b9c8d7e6f",
  op: "upsert",
  hlc: formatHlc({ wall: now, counter: 0, node: deviceId }),
  fields: { title: "Pump 3", severity: 3, notes: null },
};
const codeOf = (raw: unknown) => {
  const result = checkChange(raw, changeId, context);
  return "rejection" in result ? result.rejection.code : "ok";
};

describe("checkChange", () => {
  it("accepts a valid upsert and a valid delete", () => {
    expect(codeOf(valid)).toBe("ok");
    expect(codeOf({ changeId, reportId: valid.reportId, op: "delete", hlc: valid.hlc })).toBe("ok");
  });

  it.each([
    ["an HLC that is not wall:counter:node", { hlc: "yesterday" }, "hlc_invalid"],
    [
      "another device's HLC node",
      { hlc: formatHlc({ wall: now, counter: 0, node: "someone-else" }) },
      "hlc_node_mismatch",
    ],
    [
      "an HLC more than MAX_CLOCK_SKEW_MS ahead",
      { hlc: formatHlc({ wall: now + 300_001, counter: 0, node: deviceId }) },
      "clock_skew",
    ],
    ["no fields on an upsert", { fields: {} }, "invalid_change"],
    ["a bad field name", { fields: { "1st": 1 } }, "invalid_change"],
    [
      "65 fields",
      { fields: Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`f${i}`, i])) },
      "invalid_change",
    ],
    ["a field over 32 KiB", { fields: { notes: "x".repeat(MAX_FIELD_BYTES) } }, "too_large"],
    [
      "a change over 256 KiB",
      {
        fields: Object.fromEntries(
          Array.from({ length: 9 }, (_, i) => [`f${i}`, "x".repeat(MAX_FIELD_BYTES - 10)]),
        ),
      },
      "too_large",
    ],
    ["an unknown op", { op: "merge" }, "invalid_change"],
    ["an unknown key", { extra: true }, "invalid_change"],
    ["the nil report id", { reportId: "00000000-0000-0000-0000-000000000000" }, "invalid_change"],
    ["a base that is not an HLC", { base: { title: "v1" } }, "invalid_change"],
    [
      "a value nested 17 levels deep",
      { fields: { deep: JSON.parse(`${"[".repeat(17)}${"]".repeat(17)}`) } },
      "too_deep",
    ],
    [
      "a value nested 100,000 levels deep",
      { fields: { deep: JSON.parse(`${"[".repeat(100_000)}${"]".repeat(100_000)}`) } },
      "too_deep",
    ],
  ])("rejects %s", (_, patch, code) => {
    expect(codeOf({ ...valid, ...patch })).toBe(code);
  });

  it("accepts a value nested 16 levels deep", () => {
    expect(
      codeOf({ ...valid, fields: { deep: JSON.parse(`${"[".repeat(16)}${"]".repeat(16)}`) } }),
    ).toBe("ok");
  });

  it("accepts an HLC exactly at the skew limit and any HLC in the past", () => {
    expect(
      codeOf({ ...valid, hlc: formatHlc({ wall: now + 300_000, counter: 9, node: deviceId }) }),
    ).toBe("ok");
    expect(codeOf({ ...valid, hlc: formatHlc({ wall: 1, counter: 0, node: deviceId }) })).toBe(
      "ok",
    );
  });

  it("rejects a delete that carries fields", () => {
    expect(
      codeOf({
        changeId,
        reportId: valid.reportId,
        op: "delete",
        hlc: valid.hlc,
        fields: { a: 1 },
      }),
    ).toBe("invalid_change");
  });
});

describe("readableChangeId", () => {
  it("reads a UUID changeId and nothing else", () => {
    expect(readableChangeId(valid)).toBe(changeId);
    expect(readableChangeId({ changeId: "42" })).toBeUndefined();
    expect(readableChangeId({ changeId: 42 })).toBeUndefined();
    expect(readableChangeId(null)).toBeUndefined();
    expect(readableChangeId("x")).toBeUndefined();
  });
});

describe("values PostgreSQL cannot store", () => {
  it.each([
    ["a NUL character", "a\u0000b"],
    ["a lone surrogate", "a\ud800b"],
  ])("rejects a field holding %s, which would otherwise fail every batch it is in", (_, text) => {
    const change = {
      changeId,
      reportId: "0c9d8e7f-6a5b-4c3d-8e2f-1a0b9c8d7e6f",
      op: "upsert",
      hlc: formatHlc({ wall: now, counter: 0, node: deviceId }),
      fields: { notes: { nested: [text] } },
    };
    const result = checkChange(change, changeId, context);
    expect("rejection" in result && result.rejection.code).toBe("invalid_text");
  });

  it.each([
    ["an emoji", "Pump 3 🚀"],
    ["a noncharacter", "a\uFFFEb\uFFFF"],
    ["a control character", "tab\tbell\u0007"],
  ])("accepts %s, which jsonb stores", (_, text) => {
    expect(codeOf({ ...valid, fields: { title: text } })).toBe("ok");
  });
});

describe("objects with a __proto__ key", () => {
  it("keeps a nested __proto__ key as data, never as a prototype", () => {
    const raw = JSON.parse(
      `{"changeId":"${changeId}","reportId":"${valid.reportId}","op":"upsert","hlc":"${valid.hlc}",
        "fields":{"meta":{"__proto__":{"admin":true},"n":1}}}`,
    );
    const result = checkChange(raw, changeId, context);
    if (!("change" in result)) throw new Error(result.rejection.message);
    expect(JSON.stringify(result.change.fields)).toBe(
      '{"meta":{"__proto__":{"admin":true},"n":1}}',
    );
    expect(({} as { admin?: boolean }).admin).toBeUndefined();
  });

  it("names a bad field name and the rule it breaks, in fields and base alike", () => {
    const result = checkChange(
      { ...valid, fields: { "bad name": 1 }, base: { "bad name": null } },
      changeId,
      context,
    );
    expect("rejection" in result && result.rejection.message).toBe(
      "fields.bad name: is not a valid field name (a letter, then up to 63 letters, digits or _); " +
        "base.bad name: is not a valid field name (a letter, then up to 63 letters, digits or _)",
    );
  });

  it("refuses __proto__ as a field name", () => {
    const raw = JSON.parse(
      `{"changeId":"${changeId}","reportId":"${valid.reportId}","op":"upsert","hlc":"${valid.hlc}",
        "fields":{"__proto__":1}}`,
    );
    expect(codeOf(raw)).toBe("invalid_change");
  });
});
