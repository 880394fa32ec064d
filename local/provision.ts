/** Client credentials as the API issues them (shown once). */
export interface ClientCredentials {
  clientId: string;
  clientSecret: string;
}

export interface Provisioned {
  project: { id: string; name: string; admin: ClientCredentials };
  devices: (ClientCredentials & { id: string; name: string })[];
}

/** An answer other than 2xx, with its status. */
export class ApiCallError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/** An edge-sync API client for one-off scripts and tools, under any base path (`…/prod/`). */
export function apiClient(apiUrl: string) {
  const base = new URL(apiUrl);
  if (!base.pathname.endsWith("/")) base.pathname += "/";
  const call = async <T>(
    path: string,
    init: { token?: string; body?: unknown; form?: unknown },
  ): Promise<T> => {
    const response = await fetch(new URL(path, base), {
      method: init.body === undefined && init.form === undefined ? "GET" : "POST",
      headers: {
        ...(init.token ? { authorization: `Bearer ${init.token}` } : {}),
        ...(init.body === undefined ? {} : { "content-type": "application/json" }),
      },
      body:
        init.form !== undefined
          ? new URLSearchParams(init.form as Record<string, string>)
          : init.body === undefined
            ? undefined
            : JSON.stringify(init.body),
    });
    const text = await response.text();
    if (!response.ok)
      throw new ApiCallError(response.status, `${path}: ${response.status} ${text}`);
    return JSON.parse(text) as T;
  };
  return {
    async token({ clientId, clientSecret }: ClientCredentials): Promise<string> {
      const body = await call<{ access_token: string }>("v1/oauth/token", {
        form: {
          grant_type: "client_credentials",
          client_id: clientId,
          client_secret: clientSecret,
        },
      });
      return body.access_token;
    },
    get: <T>(path: string, token: string) => call<T>(path, { token }),
    post: <T>(path: string, token: string, body: unknown) => call<T>(path, { token, body }),
  };
}

/**
 * What a fresh deployment needs before devices can sync: as its platform
 * operator, creates a project (and so its admin), then, as that admin,
 * registers devices. Every secret is returned here and shown nowhere else.
 */
export async function provision(
  apiUrl: string,
  operator: ClientCredentials,
  { project, devices }: { project: string; devices: string[] },
): Promise<Provisioned> {
  const api = apiClient(apiUrl);
  const created = await api.post<{ id: string; admin: ClientCredentials }>(
    "v1/projects",
    await api.token(operator),
    { name: project },
  );
  const admin = { clientId: created.admin.clientId, clientSecret: created.admin.clientSecret };
  const adminToken = await api.token(admin);
  const registered = [];
  for (const name of devices) {
    const device = await api.post<ClientCredentials & { id: string }>("v1/devices", adminToken, {
      name,
    });
    registered.push({
      id: device.id,
      name,
      clientId: device.clientId,
      clientSecret: device.clientSecret,
    });
  }
  return { project: { id: created.id, name: project, admin }, devices: registered };
}
