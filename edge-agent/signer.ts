import type { JsonWebKey, KeyObject } from "node:crypto";
import type { Change } from "../core/change.ts";
import {
  contentOf,
  keyThumbprint,
  newDeviceKey,
  privateKeyOf,
  publicJwk,
  signChange,
} from "../core/signature.ts";
import type { SyncClient } from "./client.ts";
import type { Settings } from "./settings.ts";

/**
 * This device's signing key (DESIGN.md, "Chain of custody"): created at
 * `init`, kept only in the agent's database, its public part registered
 * with the cloud once. Every change written after is signed with it.
 */
export class DeviceSigner {
  private key: KeyObject | undefined;

  constructor(private readonly settings: Settings) {}

  /** The key, created on first use and stored (call in the transaction that stores the device). */
  ensure(): JsonWebKey {
    let stored = this.settings.get("signingKey");
    if (!stored) {
      stored = JSON.stringify(newDeviceKey().privateJwk);
      this.settings.set({ signingKey: stored });
    }
    return publicJwk(this.privateKey(stored));
  }

  /** The public key, or null for a device initialised before keys existed (its changes are unsigned). */
  publicKey(): JsonWebKey | null {
    const stored = this.settings.get("signingKey");
    return stored ? publicJwk(this.privateKey(stored)) : null;
  }

  /** The public key's RFC 7638 thumbprint, to compare with what the cloud holds. */
  thumbprint(): string | null {
    const jwk = this.publicKey();
    return jwk ? keyThumbprint(jwk) : null;
  }

  /**
   * Registers the public key with the cloud unless it holds it already (the
   * cloud answers the same key again as the first time, so a registration
   * whose answer was lost is simply asked again). Changes are pushed only
   * after it: the cloud checks them against the key.
   */
  async register(client: SyncClient, token: string): Promise<void> {
    const publicKey = this.publicKey();
    if (!publicKey || this.settings.get("keyRegistered") === "true") return;
    await client.registerKey(token, publicKey);
    this.settings.set({ keyRegistered: "true" });
  }

  /** The change with this device's signature, or as it is for a device without a key. */
  sign(change: Change): Change {
    const stored = this.settings.get("signingKey");
    if (!stored) return change;
    const { sig: _, ...unsigned } = change;
    return { ...unsigned, sig: signChange(this.privateKey(stored), contentOf(unsigned)) } as Change;
  }

  private privateKey(stored: string): KeyObject {
    this.key ??= privateKeyOf(JSON.parse(stored) as JsonWebKey);
    return this.key;
  }
}
