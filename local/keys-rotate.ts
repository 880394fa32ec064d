import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { KEY_GRACE_MS, loadOrCreateKeyFile, rotateKeyFile } from "../functions/lib/auth/keys.ts";

/**
 * `npm run keys:rotate`: adds a new ES256 signing key to DATA_DIR/keys.json.
 * A running local cloud picks it up within seconds; the previous key keeps
 * verifying the tokens it signed for KEY_GRACE_MS, then leaves the JWKS.
 */
const dataDir = process.env.DATA_DIR || ".local";
const path = process.env.KEYS_FILE || join(dataDir, "keys.json");
const before = await loadOrCreateKeyFile(path);
const after = await rotateKeyFile(before);
// Same mode as loadOrCreateKeyFile: the file holds private keys.
await writeFile(path, `${JSON.stringify(after, null, 2)}\n`, { mode: 0o600 });
const newest = after.keys.at(-1)!;
console.log(`new signing key ${newest.kid} in ${path}`);
console.log(
  `previous keys verify for ${KEY_GRACE_MS / 60_000} more minutes: ${before.keys.map((k) => k.kid).join(", ")}`,
);
