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

/** What decides whether a device may write a batch: its key and scopes, its reports' scopes. */
export interface WriteRules {
  /** The device's registered public key; null: it has none (its changes are unsigned). */
  publicKey: KeyObject | null;
  /** The device's scopes; none: the whole project. */
  scopes: string[];
  /** The scope of each of the batch's reports the project holds. */
  reportScopes: Map<string, string | null>;
}

/**
 * One probe of reports_pkey per report id (the only index led by id; the
 * project test as `(a = b) is true` is no index condition), as the apply
 * load does. Written as `id = any($3)` it was costed on no statistics at
 * half the table for a push of 100 ids, and planned as a sequential scan of
 * every report on every push: a cost per request that grew with the
 * project (`device-keys.db.test.ts`).
 */
export const WRITE_RULES_SQL = `select public_key, scopes,
        (select coalesce(json_agg(json_build_array(r.id, r.scope)), '[]')
           from unnest($3::uuid[]) as k(id)
           cross join lateral (select r.id, r.scope from reports r
                                where r.id = k.id and (r.project_id = $2) is true limit 1) as r) as reports
   from devices where id = $1`;

/**
 * Reads, in one query, what ingest checks a device's batch against: its key
 * (remembered once read), its scopes (read each time: an admin may change
 * them at any moment) and the scopes of the reports the batch writes.
 */
export async function deviceWriteRules(
  db: Queryable,
  {
    projectId,
    deviceId,
    reportIds,
  }: { projectId: string | undefined; deviceId: string; reportIds: string[] },
): Promise<WriteRules> {
  const [row] = await db.query<{
    public_key: JsonWebKey | null;
    scopes: string[];
    reports: [string, string | null][];
  }>(WRITE_RULES_SQL, [deviceId, projectId ?? null, reportIds]);
  const reportScopes = new Map(row?.reports ?? []);
  const scopes = row?.scopes ?? [];
  const cached = known.get(deviceId);
  if (cached || !row?.public_key) return { publicKey: cached ?? null, scopes, reportScopes };
  const key = publicKeyOf(row.public_key);
  known.set(deviceId, key);
  return { publicKey: key, scopes, reportScopes };
}
