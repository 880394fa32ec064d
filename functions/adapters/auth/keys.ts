import { chmod, mkdir, readFile, writeFile } from "node:fs/promises";
import { dirname } from "node:path";
import { createLocalJWKSet, exportJWK, generateKeyPair, importJWK, type JWK } from "jose";
import * as z from "zod";

/** A stored signing key: the private JWK (with `kid`) and when it was made. */
const StoredKeySchema = z.object({
  kid: z.string().min(1),
  createdAt: z.iso.datetime(),
  privateJwk: z.looseObject({ kty: z.literal("EC"), crv: z.literal("P-256"), d: z.string() }),
});
const KeyFileSchema = z.object({ keys: z.array(StoredKeySchema).min(1) });
export type KeyFile = z.infer<typeof KeyFileSchema>;

/**
 * The service's ES256 keys: the newest signs, every one listed verifies (so
 * tokens signed before a rotation stay valid until they expire).
 */
export interface KeyRing {
  readonly signing: { kid: string; key: CryptoKey };
  /** Public keys for `/.well-known/jwks.json`, each with `kid`, `alg`, `use`. */
  readonly jwks: { keys: JWK[] };
  /** Key resolver for `jwtVerify`, built once. */
  readonly resolveKey: ReturnType<typeof createLocalJWKSet>;
}

export async function newStoredKey(now = new Date()): Promise<KeyFile["keys"][number]> {
  const { privateKey } = await generateKeyPair("ES256", { extractable: true });
  const privateJwk = (await exportJWK(privateKey)) as KeyFile["keys"][number]["privateJwk"];
  const kid = `k-${now.toISOString().slice(0, 19).replace(/[-:T]/g, "")}-${crypto.randomUUID().slice(0, 8)}`;
  return { kid, createdAt: now.toISOString(), privateJwk };
}

/**
 * How long a replaced key still verifies: the longest a token it signed can
 * live (15 minutes) plus room for clocks and caches.
 */
export const KEY_GRACE_MS = 20 * 60_000;

/** Whether a key was replaced by a newer one more than the grace period ago. */
function retired(key: KeyFile["keys"][number], all: KeyFile["keys"], nowMs: number): boolean {
  return all.some(
    (k) => k.createdAt > key.createdAt && Date.parse(k.createdAt) + KEY_GRACE_MS < nowMs,
  );
}

/**
 * The key ring a key file gives at `nowMs`: the newest key signs; it and
 * every key replaced less than KEY_GRACE_MS ago verify.
 */
export async function keyRingFrom(file: KeyFile, nowMs = Date.now()): Promise<KeyRing> {
  const parsed = KeyFileSchema.parse(file);
  const newest = parsed.keys.reduce((a, b) => (a.createdAt >= b.createdAt ? a : b));
  const key = (await importJWK({ ...newest.privateJwk, alg: "ES256" }, "ES256")) as CryptoKey;
  const live = parsed.keys.filter((k) => !retired(k, parsed.keys, nowMs));
  const jwks = live.map(({ kid, privateJwk: { d: _d, ...pub } }) => ({
    ...pub,
    kid,
    alg: "ES256",
    use: "sig",
  }));
  return {
    signing: { kid: newest.kid, key },
    jwks: { keys: jwks },
    resolveKey: createLocalJWKSet({ keys: jwks }),
  };
}

/**
 * A key file with a new signing key added. Keys retired for more than a day
 * are dropped; the previous key stays, verifying, for KEY_GRACE_MS.
 */
export async function rotateKeyFile(file: KeyFile, now = new Date()): Promise<KeyFile> {
  const dayAgo = now.getTime() - 24 * 60 * 60_000;
  const kept = file.keys.filter((k) => !retired(k, file.keys, dayAgo));
  return { keys: [...kept, await newStoredKey(now)] };
}

/** Reads the key file document from Secrets Manager (AWS). */
export async function loadKeyFileFromSecret(secretArn: string, region: string): Promise<KeyFile> {
  const { GetSecretValueCommand, SecretsManagerClient } = await import(
    "@aws-sdk/client-secrets-manager"
  );
  const client = new SecretsManagerClient({ region });
  const out = await client.send(new GetSecretValueCommand({ SecretId: secretArn }));
  client.destroy();
  return KeyFileSchema.parse(JSON.parse(out.SecretString ?? ""));
}

/**
 * Loads the key file, creating it with one new key (mode 0600) when absent.
 * Used by the local cloud; on AWS the same document lives in Secrets Manager.
 */
export async function loadOrCreateKeyFile(path: string): Promise<KeyFile> {
  try {
    return KeyFileSchema.parse(JSON.parse(await readFile(path, "utf8")));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
  }
  const file: KeyFile = { keys: [await newStoredKey()] };
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, `${JSON.stringify(file, null, 2)}\n`, { mode: 0o600, flag: "wx" }).catch(
    async (error: NodeJS.ErrnoException) => {
      // Another process created it first: use theirs.
      if (error.code !== "EEXIST") throw error;
    },
  );
  await chmod(path, 0o600);
  return KeyFileSchema.parse(JSON.parse(await readFile(path, "utf8")));
}
