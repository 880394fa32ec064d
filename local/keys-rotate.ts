import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import {
  GetSecretValueCommand,
  PutSecretValueCommand,
  SecretsManagerClient,
} from "@aws-sdk/client-secrets-manager";
import {
  KEY_GRACE_MS,
  type KeyFile,
  loadOrCreateKeyFile,
  rotateKeyFile,
} from "../functions/adapters/auth/keys.ts";

/**
 * `npm run keys:rotate`: adds a new ES256 signing key. Locally it edits
 * DATA_DIR/keys.json (mode 0600), and a running local cloud picks it up
 * within seconds. With KEYS_SECRET_ARN it edits that Secrets Manager secret
 * instead (the first run fills the stack's empty secret); functions reload it
 * within 5 minutes. Either way the previous key keeps verifying the tokens it
 * signed for KEY_GRACE_MS, then leaves the JWKS.
 */
async function rotateSecret(secretArn: string): Promise<KeyFile> {
  const client = new SecretsManagerClient({});
  try {
    let current: KeyFile = { keys: [] };
    let text: string | undefined;
    try {
      text = (await client.send(new GetSecretValueCommand({ SecretId: secretArn }))).SecretString;
    } catch (error) {
      // A secret created without a value has no current version yet.
      if ((error as { name?: string }).name !== "ResourceNotFoundException") throw error;
    }
    if (text) {
      try {
        current = JSON.parse(text) as KeyFile;
        if (!Array.isArray(current.keys)) throw new Error("no keys array");
      } catch {
        throw new Error(`${secretArn} does not hold a key file; nothing was changed`);
      }
    }
    const next = await rotateKeyFile(current);
    await client.send(
      new PutSecretValueCommand({ SecretId: secretArn, SecretString: JSON.stringify(next) }),
    );
    return next;
  } finally {
    client.destroy();
  }
}

async function rotateFile(path: string): Promise<KeyFile> {
  const next = await rotateKeyFile(await loadOrCreateKeyFile(path));
  await writeFile(path, `${JSON.stringify(next, null, 2)}\n`, { mode: 0o600 });
  return next;
}

const secretArn = process.env.KEYS_SECRET_ARN;
const path = process.env.KEYS_FILE || join(process.env.DATA_DIR || ".local", "keys.json");
try {
  const after = secretArn ? await rotateSecret(secretArn) : await rotateFile(path);
  console.log(`new signing key ${after.keys.at(-1)!.kid} in ${secretArn ?? path}`);
  console.log(`the previous key verifies for ${KEY_GRACE_MS / 60_000} more minutes`);
} catch (error) {
  console.error(`keys:rotate: ${(error as Error).message}`);
  process.exitCode = 1;
}
