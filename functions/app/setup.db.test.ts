import { afterEach, describe, expect, it } from "vitest";
import { createTestDb, dbTargets, type TestDb } from "../../test/support/db.ts";
import { keyRingFrom } from "../adapters/auth/keys.ts";
import { verifySecret } from "../adapters/auth/secrets.ts";
import { EMPTY_KEY_FILE, EMPTY_OPERATOR_SECRET } from "../deployment.ts";
import { findPrincipalByClientId } from "./identity.ts";
import { ensureOperator, ensureSigningKey, type SecretStore } from "./setup.ts";

const KEYS = "arn:aws:secretsmanager:us-east-1:000000000000:secret:keys";
const OPERATOR = "arn:aws:secretsmanager:us-east-1:000000000000:secret:operator";

/** Secrets Manager has no local form here: an in-memory store, failing on demand. */
function memoryStore(initial: Record<string, string>) {
  const values = new Map(Object.entries(initial));
  let failPuts = 0;
  const store: SecretStore = {
    async get(id) {
      const value = values.get(id);
      if (value === undefined) throw new Error(`no secret ${id}`);
      return value;
    },
    async put(id, value) {
      if (failPuts > 0) {
        failPuts--;
        throw new Error("ServiceUnavailable");
      }
      values.set(id, value);
    },
  };
  return { store, values, failNextPut: () => failPuts++ };
}

describe("first signing key", () => {
  it("fills the empty key file the stack creates, once", async () => {
    const { store, values } = memoryStore({ [KEYS]: EMPTY_KEY_FILE });
    expect(await ensureSigningKey(store, KEYS)).toBe(true);
    const written = values.get(KEYS)!;
    const ring = await keyRingFrom(JSON.parse(written));
    expect(ring.jwks.keys).toHaveLength(1);
    expect(await ensureSigningKey(store, KEYS)).toBe(false);
    expect(values.get(KEYS)).toBe(written);
  });

  it("refuses a secret that is not a key file, and writes nothing", async () => {
    const { store, values } = memoryStore({ [KEYS]: "hunter2" });
    await expect(ensureSigningKey(store, KEYS)).rejects.toThrow(/does not hold a JSON key file/);
    expect(values.get(KEYS)).toBe("hunter2");
  });
});

describe.each(dbTargets())("first platform operator on %s", (target) => {
  let t: TestDb;
  afterEach(() => t?.drop());

  it("creates one operator whose credentials the secret holds, and only once", async () => {
    t = await createTestDb(target);
    const { store, values } = memoryStore({ [OPERATOR]: EMPTY_OPERATOR_SECRET });
    expect(await ensureOperator(t.db, store, OPERATOR)).toBe(true);
    const { clientId, clientSecret } = JSON.parse(values.get(OPERATOR)!);
    const principal = await findPrincipalByClientId(t.db, clientId);
    expect(principal).toMatchObject({ role: "operator", project_id: null, revoked_at: null });
    expect(await verifySecret(clientSecret, principal!.secret_hash)).toBe(true);

    expect(await ensureOperator(t.db, store, OPERATOR)).toBe(false);
    expect(JSON.parse(values.get(OPERATOR)!).clientId).toBe(clientId);
    const operators = await t.db.query("select id from members where role = 'operator'");
    expect(operators).toHaveLength(1);
  });

  it("leaves no operator behind when the secret cannot be written, and succeeds on retry", async () => {
    t = await createTestDb(target);
    const { store, values, failNextPut } = memoryStore({ [OPERATOR]: EMPTY_OPERATOR_SECRET });
    failNextPut();
    await expect(ensureOperator(t.db, store, OPERATOR)).rejects.toThrow(/ServiceUnavailable/);
    expect(await t.db.query("select id from members where role = 'operator'")).toHaveLength(0);
    expect(values.get(OPERATOR)).toBe(EMPTY_OPERATOR_SECRET);

    expect(await ensureOperator(t.db, store, OPERATOR)).toBe(true);
    const { clientId } = JSON.parse(values.get(OPERATOR)!);
    expect(await findPrincipalByClientId(t.db, clientId)).toBeDefined();
  });
});
