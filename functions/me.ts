import { UnauthorizedError, ValidationError } from "../core/errors.ts";
import { DeviceKeyRequestSchema } from "../core/wire-custody.ts";
import { registerDeviceKey } from "./app/device-keys.ts";
import { findPrincipalById } from "./app/identity.ts";
import { type DepsOf, lambdaHandler } from "./deps.ts";
import { apiRoute } from "./http/api-route.ts";
import { type ApiEvent, json, principalOf } from "./http/middleware.ts";

/**
 * The caller's own identity: `GET /v1/me` (who the token speaks for) and
 * `POST /v1/devices/me/key` (a device registers its signing key, once).
 */
export const create = (deps: DepsOf<"me">) =>
  apiRoute(deps, { body: { maxBytes: 4096, maxDepth: 4 } }).handler(async (event: ApiEvent) => {
    const principal = principalOf(event);
    if (event.resource === "/v1/devices/me/key") {
      const body = DeviceKeyRequestSchema.safeParse(event.parsedBody);
      if (!body.success) throw new ValidationError('The body must be {"publicKey": JWK}.');
      return json(201, await registerDeviceKey(deps.db, principal.sub, body.data.publicKey));
    }
    const row = await findPrincipalById(deps.db, principal.sub);
    if (!row || row.revoked_at) throw new UnauthorizedError("These credentials were revoked.");
    const me = { id: row.id, name: row.name, role: row.role, project: row.project_id };
    if (row.role !== "device") return json(200, me);
    const [device] = await deps.db.query<{ scopes: string[] }>(
      "select scopes from devices where id = $1",
      [row.id],
    );
    return json(200, { ...me, scopes: device?.scopes ?? [] });
  });

export const handler = lambdaHandler("me", create);
