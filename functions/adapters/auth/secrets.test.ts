import { describe, expect, it } from "vitest";
import { hashSecret, newCredentials, verifySecret } from "./secrets.ts";

describe("newCredentials", () => {
  it("never starts a client id or secret with -, so both can follow an option on a command line", () => {
    // base64url starts one random string in 64 with "-".
    for (let i = 0; i < 2_000; i++) {
      const { clientId, clientSecret } = newCredentials("dev");
      expect(clientId).toMatch(/^dev_[\w-]{16}$/);
      expect(clientSecret).toMatch(/^ess_[\w-]{43}$/);
    }
  });

  it("verifies a secret against its hash, and nothing else", async () => {
    const { clientSecret } = newCredentials("dev");
    const stored = await hashSecret(clientSecret);
    expect(await verifySecret(clientSecret, stored)).toBe(true);
    expect(await verifySecret(`${clientSecret}x`, stored)).toBe(false);
    expect(await verifySecret(clientSecret, undefined)).toBe(false);
  });
});
