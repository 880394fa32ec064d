import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { keyRingFrom } from "../functions/adapters/auth/keys.ts";
import { EMPTY_KEY_FILE } from "../functions/deployment.ts";
import { startSecretsManager } from "../test/support/secrets-manager.ts";

const run = promisify(execFile);
const rotate = (env: Record<string, string>) =>
  run(process.execPath, ["--import", "tsx", "local/keys-rotate.ts"], {
    env: {
      PATH: process.env.PATH,
      AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: "true",
      ...env,
    },
  });

describe("npm run keys:rotate", () => {
  let dir: string;
  let sm: Awaited<ReturnType<typeof startSecretsManager>>;
  const KEYS = "arn:aws:secretsmanager:us-east-1:000000000000:secret:SigningKeys-AbCdEf";
  const BROKEN = "arn:aws:secretsmanager:us-east-1:000000000000:secret:Broken-AbCdEf";
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "keys-rotate-"));
    sm = await startSecretsManager({ [KEYS]: EMPTY_KEY_FILE, [BROKEN]: "hunter2" });
  });
  afterAll(async () => {
    await sm.stop();
    await rm(dir, { recursive: true, force: true });
  });
  const aws = () => ({
    AWS_REGION: "us-east-1",
    AWS_ACCESS_KEY_ID: "test",
    AWS_SECRET_ACCESS_KEY: "test",
    AWS_ENDPOINT_URL_SECRETS_MANAGER: sm.endpoint,
  });

  it("adds a key to the local key file, kept private, the newest signing", async () => {
    await rotate({ DATA_DIR: dir });
    const { stdout } = await rotate({ DATA_DIR: dir });
    const path = join(dir, "keys.json");
    const file = JSON.parse(await readFile(path, "utf8"));
    expect(file.keys).toHaveLength(3); // created with one, then two rotations
    const ring = await keyRingFrom(file);
    expect(ring.signing.kid).toBe(file.keys.at(-1).kid);
    expect(stdout).toContain(`new signing key ${ring.signing.kid}`);
    expect((await stat(path)).mode & 0o777).toBe(0o600);
  });

  it("fills the stack's empty key-file secret, then rotates it", async () => {
    await rotate({ ...aws(), KEYS_SECRET_ARN: KEYS });
    expect(JSON.parse(sm.values.get(KEYS)!).keys).toHaveLength(1);
    await rotate({ ...aws(), KEYS_SECRET_ARN: KEYS });
    const file = JSON.parse(sm.values.get(KEYS)!);
    expect(file.keys).toHaveLength(2);
    expect((await keyRingFrom(file)).jwks.keys).toHaveLength(2); // the previous key still verifies
  });

  it("refuses a secret that is not a key file, and leaves it alone", async () => {
    const failed = await rotate({ ...aws(), KEYS_SECRET_ARN: BROKEN }).catch((e) => e);
    expect(failed.code).toBe(1);
    expect(failed.stderr).toMatch(/does not hold a key file; nothing was changed/);
    expect(sm.values.get(BROKEN)).toBe("hunter2");
  });
});
