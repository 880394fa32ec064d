import { generateKeyPairSync } from "node:crypto";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { JsonObject } from "./json.ts";
import {
  contentOf,
  keyThumbprint,
  newDeviceKey,
  privateKeyOf,
  publicKeyOf,
  signChange,
  signingInput,
  verifyChange,
} from "./signature.ts";

const change = {
  changeId: "0190f1d2-7c3a-7b8e-9a6b-2f4c1e8d9a01",
  reportId: "0190f1d2-7c3a-7b8e-9a6b-2f4c1e8d9a02",
  op: "upsert" as const,
  hlc: "001763800000000:000000:0190f1d2-7c3a-7b8e-9a6b-2f4c1e8d9a03",
  fields: { title: "Pump 3", nested: { b: 1, a: [true, null] } },
  base: { title: null },
};

describe("device signatures", () => {
  it("signs the canonical form DESIGN.md gives: the array, keys sorted, no whitespace, absent parts null", () => {
    expect(signingInput(contentOf(change)).toString("utf8")).toBe(
      '["0190f1d2-7c3a-7b8e-9a6b-2f4c1e8d9a01","0190f1d2-7c3a-7b8e-9a6b-2f4c1e8d9a02","upsert",' +
        '"001763800000000:000000:0190f1d2-7c3a-7b8e-9a6b-2f4c1e8d9a03",null,' +
        '{"nested":{"a":[true,null],"b":1},"title":"Pump 3"},{"title":null}]',
    );
    const { fields: _, base: __, ...remove } = { ...change, op: "delete" as const };
    expect(signingInput(contentOf(remove)).toString("utf8")).toMatch(
      /,"delete",".*",null,null,null\]$/,
    );
  });

  it("verifies its own signatures and no others, for any change content", () => {
    const { privateJwk, publicJwk } = newDeviceKey();
    const key = publicKeyOf(publicJwk);
    const other = publicKeyOf(newDeviceKey().publicJwk);
    fc.assert(
      fc.property(fc.dictionary(fc.stringMatching(/^[a-z]{1,8}$/), fc.jsonValue()), (fields) => {
        const c = { ...change, fields: fields as JsonObject };
        const sig = signChange(privateKeyOf(privateJwk), contentOf(c));
        expect(verifyChange(key, contentOf(c), sig)).toBe(true);
        expect(verifyChange(other, contentOf(c), sig)).toBe(false);
        expect(
          verifyChange(
            key,
            contentOf({ ...c, hlc: change.hlc.replace("000000:", "000001:") }),
            sig,
          ),
        ).toBe(false);
      }),
      { numRuns: 50 },
    );
  });

  it("accepts what a device signs with WebCrypto, Ed25519 and P-256 alike", async () => {
    const data = signingInput(contentOf(change));
    for (const algorithm of [
      { generate: { name: "Ed25519" }, sign: { name: "Ed25519" } },
      {
        generate: { name: "ECDSA", namedCurve: "P-256" },
        sign: { name: "ECDSA", hash: "SHA-256" },
      },
    ]) {
      const pair = (await crypto.subtle.generateKey(algorithm.generate, true, [
        "sign",
        "verify",
      ])) as CryptoKeyPair;
      const jwk = await crypto.subtle.exportKey("jwk", pair.publicKey);
      const sig = Buffer.from(
        await crypto.subtle.sign(algorithm.sign, pair.privateKey, new Uint8Array(data)),
      );
      const key = publicKeyOf(jwk);
      expect(verifyChange(key, contentOf(change), sig.toString("base64url"))).toBe(true);
      const flipped = Buffer.from(sig);
      flipped[0]! ^= 1;
      expect(verifyChange(key, contentOf(change), flipped.toString("base64url"))).toBe(false);
    }
  });

  it("refuses a key that is private, of another kind, or not a key", () => {
    const { privateJwk } = newDeviceKey();
    expect(() => publicKeyOf(privateJwk)).toThrow(/private/);
    const rsa = generateKeyPairSync("rsa", { modulusLength: 1024 }).publicKey.export({
      format: "jwk",
    });
    expect(() => publicKeyOf(rsa)).toThrow(/Ed25519/);
    expect(() => publicKeyOf({ kty: "OKP", crv: "Ed25519", x: "short" })).toThrow(
      /not a valid key/,
    );
    expect(() => publicKeyOf("key")).toThrow(/Ed25519/);
  });

  it("names a key by its RFC 7638 thumbprint", () => {
    // RFC 8037, appendix A.3.
    expect(
      keyThumbprint({
        kty: "OKP",
        crv: "Ed25519",
        x: "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo",
      }),
    ).toBe("kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k");
  });
});
