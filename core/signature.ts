import {
  createHash,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  type JsonWebKey,
  type KeyObject,
  sign,
  verify,
} from "node:crypto";
import { canonicalJson } from "./audit.ts";
import type { Change } from "./change.ts";
import { ValidationError } from "./errors.ts";
import type { JsonObject } from "./json.ts";

/**
 * Device-signed changes (DESIGN.md, "Chain of custody"). A device signs the
 * canonical form of each change with a key only it holds; the cloud keeps
 * the public key, checks every change against it at ingest, and keeps the
 * signature in the audit row, so that neither a forged change nor an edited
 * audit row verifies, whoever runs the database.
 */

/** What a device signs: the parts of a change that say what it does. */
export interface SignedContent {
  changeId: string;
  reportId: string;
  op: string;
  hlc: string;
  scope?: string | null;
  fields?: JsonObject | null;
  base?: Record<string, string | null> | null;
}

/**
 * The canonical form: the UTF-8 bytes of the JSON array
 * `[changeId, reportId, op, hlc, scope, fields, base]`, object keys sorted,
 * no whitespace, absent parts as null.
 */
export function signingInput(c: SignedContent): Buffer {
  return Buffer.from(
    canonicalJson([
      c.changeId,
      c.reportId,
      c.op,
      c.hlc,
      c.scope ?? null,
      c.fields ?? null,
      c.base ?? null,
    ]),
    "utf8",
  );
}

/**
 * A signature as it travels: base64url, 64 bytes (Ed25519, or P-256 as r‖s),
 * in its one canonical spelling: the last character carries two bits, and
 * the four unused ones must be zero, so that no two texts name the same bytes.
 */
export const SIGNATURE_PATTERN = /^[A-Za-z0-9_-]{85}[AQgw]$/;

/**
 * A device's public key from its JWK: Ed25519 (`OKP`) or P-256 (`EC`), and
 * nothing private in it.
 *
 * @throws ValidationError for anything else.
 */
export function publicKeyOf(jwk: unknown): KeyObject {
  const key = jwk as JsonWebKey | null;
  const supported =
    typeof key === "object" &&
    key !== null &&
    ((key.kty === "OKP" && key.crv === "Ed25519") || (key.kty === "EC" && key.crv === "P-256"));
  if (!supported) {
    throw new ValidationError("publicKey must be an Ed25519 (OKP) or P-256 (EC) JWK.");
  }
  if ("d" in key)
    throw new ValidationError("publicKey holds a private key: send the public part only.");
  try {
    return createPublicKey({ key: key as JsonWebKey, format: "jwk" });
  } catch {
    throw new ValidationError("publicKey is not a valid key.");
  }
}

/** The JWK of a public key with only its public members, as stored and bundled. */
export function publicJwk(key: KeyObject): JsonWebKey {
  const { kty, crv, x, y } = key.export({ format: "jwk" });
  return kty === "EC" ? { kty, crv, x, y } : { kty, crv, x };
}

/** RFC 7638 thumbprint (SHA-256, base64url): a key's short name, to compare by eye. */
export function keyThumbprint(jwk: JsonWebKey): string {
  const members =
    jwk.kty === "EC"
      ? { crv: jwk.crv, kty: jwk.kty, x: jwk.x, y: jwk.y }
      : { crv: jwk.crv, kty: jwk.kty, x: jwk.x };
  return createHash("sha256").update(JSON.stringify(members)).digest("base64url");
}

/** Whether `sig` is `key`'s signature of the change's canonical form. */
export function verifyChange(key: KeyObject, content: SignedContent, sig: string): boolean {
  if (!SIGNATURE_PATTERN.test(sig)) return false;
  const signature = Buffer.from(sig, "base64url");
  const data = signingInput(content);
  return key.asymmetricKeyType === "ed25519"
    ? verify(null, data, key, signature)
    : verify("sha256", data, { key, dsaEncoding: "ieee-p1363" }, signature);
}

/** Signs a change's canonical form with the device's private key. */
export function signChange(key: KeyObject, content: SignedContent): string {
  const data = signingInput(content);
  const signature =
    key.asymmetricKeyType === "ed25519"
      ? sign(null, data, key)
      : sign("sha256", data, { key, dsaEncoding: "ieee-p1363" });
  return signature.toString("base64url");
}

/** A new Ed25519 key pair for a device: the private JWK to keep, the public one to register. */
export function newDeviceKey(): { privateJwk: JsonWebKey; publicJwk: JsonWebKey } {
  const { privateKey, publicKey } = generateKeyPairSync("ed25519");
  return { privateJwk: privateKey.export({ format: "jwk" }), publicJwk: publicJwk(publicKey) };
}

/** A device's private key from the JWK it keeps. */
export function privateKeyOf(jwk: JsonWebKey): KeyObject {
  return createPrivateKey({ key: jwk, format: "jwk" });
}

/** The signed content of a change as it arrives (`sig` itself excluded). */
export function contentOf(change: Change & { scope?: string }): SignedContent {
  return {
    changeId: change.changeId,
    reportId: change.reportId,
    op: change.op,
    hlc: change.hlc,
    scope: change.scope ?? null,
    fields: change.op === "upsert" ? change.fields : null,
    base: change.base ?? null,
  };
}
