import { describe, expect, it } from "vitest";
import { KEY_GRACE_MS, keyRingFrom, newStoredKey, rotateKeyFile } from "./keys.ts";

describe("signing key rotation", () => {
  it("signs with the new key at once, verifies with the old one through its grace, then drops it", async () => {
    const start = new Date("2026-11-22T10:00:00Z");
    const first = { keys: [await newStoredKey(start)] };
    const rotatedAt = new Date(start.getTime() + 3_600_000);
    const rotated = await rotateKeyFile(first, rotatedAt);
    const [oldKid, newKid] = rotated.keys.map((k) => k.kid);

    const during = await keyRingFrom(rotated, rotatedAt.getTime() + KEY_GRACE_MS - 1);
    expect(during.signing.kid).toBe(newKid);
    expect(during.jwks.keys.map((k) => k.kid)).toEqual([oldKid, newKid]);

    const after = await keyRingFrom(rotated, rotatedAt.getTime() + KEY_GRACE_MS + 1);
    expect(after.jwks.keys.map((k) => k.kid)).toEqual([newKid]);
  });

  it("publishes only public keys", async () => {
    const ring = await keyRingFrom({ keys: [await newStoredKey()] });
    expect(ring.jwks.keys[0]).toMatchObject({ kty: "EC", crv: "P-256", alg: "ES256", use: "sig" });
    expect(ring.jwks.keys[0]).not.toHaveProperty("d");
  });

  it("forgets keys retired for more than a day when rotating again", async () => {
    const t0 = Date.parse("2026-01-01T00:00:00Z");
    let file = { keys: [await newStoredKey(new Date(t0))] };
    file = await rotateKeyFile(file, new Date(t0 + 3_600_000));
    file = await rotateKeyFile(file, new Date(t0 + 3 * 86_400_000));
    expect(file.keys).toHaveLength(2);
  });
});
