import type { JsonWebKey } from "node:crypto";
import type { z } from "zod";
import type { Change } from "../core/change.ts";
import {
  type IngestResult,
  IngestResultSchema,
  type Me,
  MeSchema,
  type SyncPage,
  SyncPageSchema,
  TokenResponseSchema,
} from "../core/wire.ts";
import { DeviceKeySchema } from "../core/wire-custody.ts";
import { USER_AGENT } from "./version.ts";

/** The cloud could not be reached, or answered that it is unavailable: retry later. */
export class CloudUnreachableError extends Error {
  override name = "CloudUnreachableError";
  constructor(
    message: string,
    readonly retryAfterMs?: number,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

/** The cloud refused the request itself (4xx): retrying the same request will not help. */
export class CloudRequestError extends Error {
  override name = "CloudRequestError";
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/**
 * What a push came to: the cloud's answer, where a change pushed alone that
 * the cloud refused whole counts as rejected with the refusal's code.
 */
export type PushResult = Omit<IngestResult, "rejected"> & {
  rejected: { changeId: string; code: string; message: string }[];
};

export interface ClientOptions {
  apiUrl: string;
  timeoutMs?: number;
  signal?: AbortSignal;
}

function retryAfterMs(response: Response): number | undefined {
  const value = response.headers.get("retry-after");
  if (!value) return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return seconds * 1000;
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - Date.now());
}

/** The HTTP side of the agent: token, push, pull. Knows nothing of SQLite. */
export class SyncClient {
  /** The API's address as a directory, so paths join under a stage path (`…/prod/`). */
  private readonly base: URL;

  constructor(private readonly options: ClientOptions) {
    this.base = new URL(options.apiUrl);
    if (!this.base.pathname.endsWith("/")) this.base.pathname += "/";
  }

  /**
   * One request; its 2xx answer parsed with the wire contract's schema. An
   * answer that is not what the API promises (a captive portal's page, a
   * proxy's) counts as the cloud being unreachable: try again later.
   */
  private async request<S extends z.ZodType>(
    path: string,
    init: RequestInit,
    schema: S,
  ): Promise<z.output<S>> {
    const signal = AbortSignal.any([
      AbortSignal.timeout(this.options.timeoutMs ?? 30_000),
      ...(this.options.signal ? [this.options.signal] : []),
    ]);
    let response: Response;
    try {
      response = await fetch(new URL(path.replace(/^\//, ""), this.base), {
        ...init,
        headers: { ...(init.headers as Record<string, string>), "user-agent": USER_AGENT },
        signal,
      });
    } catch (error) {
      throw new CloudUnreachableError(
        `cannot reach ${this.options.apiUrl}: ${(error as Error).message}`,
        undefined,
        {
          cause: error,
        },
      );
    }
    const text = await response.text();
    let body: unknown;
    try {
      body = text ? JSON.parse(text) : undefined;
    } catch {
      body = undefined;
    }
    if (response.status >= 500 || response.status === 429) {
      throw new CloudUnreachableError(
        `the cloud answered ${response.status}`,
        retryAfterMs(response),
      );
    }
    if (response.status >= 400) {
      const error = (body as { error?: unknown })?.error;
      const code =
        typeof error === "string" ? error : ((error as { code?: string })?.code ?? "http_error");
      const message =
        typeof error === "object" && error && "message" in error
          ? String((error as { message: unknown }).message)
          : ((body as { error_description?: string })?.error_description ??
            `HTTP ${response.status}`);
      throw new CloudRequestError(response.status, code, message);
    }
    const parsed = schema.safeParse(body);
    if (!parsed.success) {
      throw new CloudUnreachableError(
        `the answer from ${this.options.apiUrl} to ${path.split("?")[0]} is not the API's (HTTP ${response.status})`,
      );
    }
    return parsed.data;
  }

  async token(
    clientId: string,
    clientSecret: string,
  ): Promise<{ accessToken: string; expiresIn: number }> {
    const body = await this.request(
      "/v1/oauth/token",
      {
        method: "POST",
        headers: { "content-type": "application/x-www-form-urlencoded" },
        body: new URLSearchParams({
          grant_type: "client_credentials",
          client_id: clientId,
          client_secret: clientSecret,
        }),
      },
      TokenResponseSchema,
    );
    return { accessToken: body.access_token, expiresIn: body.expires_in };
  }

  /** Registers this device's public signing key (the cloud answers the same for the same key again). */
  async registerKey(token: string, publicKey: JsonWebKey): Promise<void> {
    await this.request(
      "/v1/devices/me/key",
      {
        method: "POST",
        headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
        body: JSON.stringify({ publicKey }),
      },
      DeviceKeySchema,
    );
  }

  async me(token: string): Promise<Me> {
    return this.request("/v1/me", { headers: { authorization: `Bearer ${token}` } }, MeSchema);
  }

  async push(token: string, changes: Change[]): Promise<IngestResult> {
    return this.request(
      "/v1/changes",
      {
        method: "POST",
        headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
        body: JSON.stringify({ changes }),
      },
      IngestResultSchema,
    );
  }

  async pull(token: string, cursor: string | undefined, limit = 500): Promise<SyncPage> {
    const query = new URLSearchParams({ limit: String(limit), ...(cursor ? { cursor } : {}) });
    return this.request(
      `/v1/sync?${query}`,
      { headers: { authorization: `Bearer ${token}` } },
      SyncPageSchema,
    );
  }
}
