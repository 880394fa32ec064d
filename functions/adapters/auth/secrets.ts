import { randomBytes, type ScryptOptions, scrypt, timingSafeEqual } from "node:crypto";

const PARAMS = { N: 16_384, r: 8, p: 1 } as const;
const KEY_LENGTH = 32;

function derive(secret: string, salt: Buffer, options: ScryptOptions): Promise<Buffer> {
  return new Promise((resolve, reject) =>
    scrypt(secret, salt, KEY_LENGTH, options, (error, key) =>
      error ? reject(error) : resolve(key),
    ),
  );
}

/** Stores a client secret as `scrypt$N$r$p$salt$hash` (base64url); the secret itself is never kept. */
export async function hashSecret(secret: string): Promise<string> {
  const salt = randomBytes(16);
  const key = await derive(secret, salt, PARAMS);
  return [
    "scrypt",
    PARAMS.N,
    PARAMS.r,
    PARAMS.p,
    salt.toString("base64url"),
    key.toString("base64url"),
  ].join("$");
}

// Verified against when the client id is unknown, so that an unknown id
// costs as much time as a wrong secret.
const DECOY = `scrypt$${PARAMS.N}$${PARAMS.r}$${PARAMS.p}$${"A".repeat(22)}$${"A".repeat(43)}`;

/** Constant-time check of a secret against a stored hash; `undefined` hash always fails. */
export async function verifySecret(secret: string, stored: string | undefined): Promise<boolean> {
  const [scheme, n, r, p, salt, hash] = (stored ?? DECOY).split("$");
  if (scheme !== "scrypt" || !salt || !hash) return false;
  const expected = Buffer.from(hash, "base64url");
  const actual = await derive(secret, Buffer.from(salt, "base64url"), {
    N: Number(n),
    r: Number(r),
    p: Number(p),
  });
  return (
    stored !== undefined && actual.length === expected.length && timingSafeEqual(actual, expected)
  );
}

/**
 * A new client id (`prefix_` + 16 random characters) and a 256-bit secret.
 * Both start with letters, never with `-` (base64url's alphabet has it), so
 * either can follow a command-line option as its value; the secret's `ess_`
 * prefix also lets secret scanners recognise a leaked one.
 */
export function newCredentials(prefix: string): { clientId: string; clientSecret: string } {
  return {
    clientId: `${prefix}_${randomBytes(12).toString("base64url")}`,
    clientSecret: `ess_${randomBytes(32).toString("base64url")}`,
  };
}
