import * as z from "zod";
import { rotateKeyFile } from "../adapters/auth/keys.ts";
import type { Db } from "../adapters/db/db.ts";
import { createMember } from "./identity.ts";

/** Reads and writes one secret's string value (Secrets Manager on AWS and LocalStack). */
export interface SecretStore {
  get(secretId: string): Promise<string>;
  put(secretId: string, value: string): Promise<void>;
}

const Placeholder = z.object({ keys: z.tuple([]) }).strict();

/**
 * Gives a new deployment its first signing key: fills the secret when it
 * still holds EMPTY_KEY_FILE, and leaves a key file already there alone
 * (`npm run keys:rotate` rotates it).
 *
 * @returns whether it wrote a key.
 */
export async function ensureSigningKey(store: SecretStore, secretId: string): Promise<boolean> {
  const current = await store.get(secretId);
  let parsed: unknown;
  try {
    parsed = JSON.parse(current);
  } catch {
    throw new Error(`the signing-key secret ${secretId} does not hold a JSON key file`);
  }
  if (!Placeholder.safeParse(parsed).success) return false;
  await store.put(secretId, JSON.stringify(await rotateKeyFile({ keys: [] })));
  return true;
}

/**
 * Gives a new deployment its platform operator, the one principal that can
 * create projects (and so their admins): when no operator exists, creates one
 * and writes its client credentials to the secret, in the same transaction,
 * so a failed write leaves no operator whose secret nobody has. The secret is
 * the only place they are shown.
 *
 * @returns whether it created the operator.
 */
export async function ensureOperator(
  db: Db,
  store: SecretStore,
  secretId: string,
): Promise<boolean> {
  return db.transaction(async (tx) => {
    // One setup at a time, even if two deployments race.
    await tx.query("select pg_advisory_xact_lock(hashtext('edge-sync setup'))");
    const existing = await tx.query("select 1 from members where role = 'operator' limit 1");
    if (existing.length > 0) return false;
    const operator = await createMember(tx, null, "platform operator", "operator");
    await store.put(
      secretId,
      JSON.stringify({ clientId: operator.clientId, clientSecret: operator.clientSecret }),
    );
    return true;
  });
}
