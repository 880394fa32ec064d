import type { JsonWebKey, KeyObject } from "node:crypto";
import { EdgeSyncError } from "../../core/errors.ts";
import { keyThumbprint, publicJwk, publicKeyOf } from "../../core/signature.ts";
import type { Queryable } from "../adapters/db/db.ts";

/** The device already has a key: it is registered once, never replaced. */
export class KeyAlreadyRegisteredError extends EdgeSyncError {
  override name = "KeyAlreadyRegisteredError";
  constructor() {
    super(
      "conflict",
      "This device registered its signing key already; a key is never replaced. A device that lost its key needs new credentials (a new device).",
      409,
    );
  }
}

/**
 * Registers a device's public signing key, once (DESIGN.md, "Chain of
 * custody"). From then on ingest refuses the device's changes that do not
 * carry its signature. The same key sent again is answered as the first
 * time, so a device whose answer was lost can ask again.
 *
 * @throws ValidationError for a key that is not an Ed25519 or P-256 public JWK.
 * @throws KeyAlreadyRegisteredError when the device has another one.
 */
export async function registerDeviceKey(
  db: Queryable,
  deviceId: string,
  jwk: unknown,
): Promise<{ publicKey: JsonWebKey; registeredAt: string }> {
  const publicKey = publicJwk(publicKeyOf(jwk));
  const rows = await db.query<{ key_registered_at: Date }>(
    `update devices set public_key = $2::jsonb, key_registered_at = now()
      where id = $1 and public_key is null returning key_registered_at`,
    [deviceId, JSON.stringify(publicKey)],
  );
  if (rows[0]) return { publicKey, registeredAt: rows[0].key_registered_at.toISOString() };
  const [held] = await db.query<{ public_key: JsonWebKey; key_registered_at: Date }>(
    "select public_key, key_registered_at from devices where id = $1",
    [deviceId],
  );
  if (!held || keyThumbprint(held.public_key) !== keyThumbprint(publicKey)) {
    throw new KeyAlreadyRegisteredError();
  }
  return { publicKey, registeredAt: held.key_registered_at.toISOString() };
}

/**
 * Registered keys by device. A key never changes once registered, so this
 * container remembers the ones it has read; a device without one is asked
 * again each time, as it may register at any moment.
 */
const known = new Map<string, KeyObject>();

/** The device's registered public key, or null when it has none (its changes are unsigned). */
export async function deviceKey(db: Queryable, deviceId: string): Promise<KeyObject | null> {
  const cached = known.get(deviceId);
  if (cached) return cached;
  const rows = await db.query<{ public_key: JsonWebKey | null }>(
    "select public_key from devices where id = $1",
    [deviceId],
  );
  const jwk = rows[0]?.public_key;
  if (!jwk) return null;
  const key = publicKeyOf(jwk);
  known.set(deviceId, key);
  return key;
}
