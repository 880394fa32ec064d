import { CloudRequestError, type SyncClient } from "./client.ts";
import type { Settings } from "./settings.ts";

/** Refresh a token this long before it expires. */
const TOKEN_MARGIN_MS = 60_000;

/**
 * The agent's session with the cloud: the HTTP client and the access token,
 * cached in the settings and refreshed before it expires or when the cloud
 * says it is no longer good.
 */
export class CloudSession {
  constructor(
    readonly client: SyncClient,
    private readonly settings: Settings,
    private readonly now: () => number,
  ) {}

  private async token(refresh = false): Promise<string> {
    const token = this.settings.get("token");
    const expiresAt = this.settings.get("tokenExpiresAt") ?? 0;
    if (!refresh && token && expiresAt - TOKEN_MARGIN_MS > this.now()) return token;
    const { accessToken, expiresIn } = await this.client.token(
      this.settings.get("clientId") ?? "",
      this.settings.get("clientSecret") ?? "",
    );
    this.settings.set({ token: accessToken, tokenExpiresAt: this.now() + expiresIn * 1000 });
    return accessToken;
  }

  /** Runs `call` with a token; on 401 fetches a new token once and tries again. */
  async authorized<T>(call: (client: SyncClient, token: string) => Promise<T>): Promise<T> {
    try {
      return await call(this.client, await this.token());
    } catch (error) {
      if (!(error instanceof CloudRequestError && error.status === 401)) throw error;
      return call(this.client, await this.token(true));
    }
  }
}
