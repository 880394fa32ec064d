import type { APIGatewayProxyResult } from "aws-lambda";
import * as z from "zod";
import { NotFoundError, ValidationError } from "../core/errors.ts";
import type { Role } from "../core/types.ts";
import {
  DeviceRequestSchema,
  DeviceScopesRequestSchema,
  MemberRequestSchema,
  NameSchema,
} from "../core/wire-fleet.ts";
import { withActivity } from "./app/activity.ts";
import {
  createDevice,
  createMember,
  createProjectWithAdmin,
  revokeDevice,
  revokeMember,
  setDeviceScopes,
} from "./app/identity.ts";
import { type DepsOf, lambdaHandler } from "./deps.ts";
import { type ApiEvent, apiRoute, callerActing, callerProject } from "./http/api-route.ts";
import { actorOf, json, noContent, principalOf } from "./http/middleware.ts";

const uuid = z.uuid();

function parse<T>(schema: z.ZodType<T>, body: unknown, shape: string): T {
  const parsed = schema.safeParse(body);
  if (!parsed.success) throw new ValidationError(`The body must be ${shape}.`);
  return parsed.data;
}

type Route = (deps: DepsOf<"manage">, event: ApiEvent) => Promise<APIGatewayProxyResult>;

const NAME = '{"name": "…"} (1 to 200 characters)';

const SCOPES =
  '{"scopes": ["…"]} (at most 500; each 1 to 128 characters, none a control character)';

const registerDevice: Route = async (deps, event) => {
  const body = parse(
    DeviceRequestSchema,
    event.parsedBody,
    `${NAME.slice(0, -1)}, "scopes"?: […]}`,
  );
  const created = await withActivity(
    deps.db,
    callerActing(deps, event),
    (tx) => createDevice(tx, callerProject(event), body.name, body.scopes, principalOf(event).sub),
    (device) => ({
      action: "device.register",
      targetId: device.id,
      details: { name: device.name, scopes: device.scopes },
    }),
  );
  return json(201, created);
};

/** The path's id; another project's device or member, or none at all, is the same answer. */
function idOf(event: ApiEvent, what: "device" | "member"): string {
  const id = event.pathParameters?.id ?? "";
  if (!uuid.safeParse(id).success) throw new NotFoundError(`No such ${what}.`);
  return id;
}
const deviceIdOf = (event: ApiEvent) => idOf(event, "device");

const revoke: Route = async (deps, event) => {
  const id = deviceIdOf(event);
  await withActivity(
    deps.db,
    callerActing(deps, event),
    async (tx) => {
      if (!(await revokeDevice(tx, callerProject(event), id)))
        throw new NotFoundError("No such device.");
    },
    () => ({ action: "device.revoke", targetId: id, details: {} }),
  );
  return noContent();
};

const putScopes: Route = async (deps, event) => {
  const id = deviceIdOf(event);
  const body = parse(DeviceScopesRequestSchema, event.parsedBody, SCOPES);
  const scopes = await withActivity(
    deps.db,
    callerActing(deps, event),
    async (tx) => {
      const set = await setDeviceScopes(
        tx,
        callerProject(event),
        id,
        body.scopes,
        principalOf(event).sub,
      );
      if (!set) throw new NotFoundError("No such device.");
      return set;
    },
    (set) => ({ action: "device.scopes", targetId: id, details: { scopes: set } }),
  );
  deps.logger.info("device scopes set", { deviceId: id, scopes: scopes.length });
  return json(200, { id, scopes });
};

const addMember: Route = async (deps, event) => {
  const body = parse(
    MemberRequestSchema,
    event.parsedBody,
    '{"name": "…", "role": "analyst" | "auditor" | "admin"}',
  );
  const role = body.role as Exclude<Role, "device">;
  const created = await withActivity(
    deps.db,
    callerActing(deps, event),
    (tx) => createMember(tx, callerProject(event), body.name, role),
    (member) => ({
      action: "member.add",
      targetId: member.id,
      details: { name: member.name, role },
    }),
  );
  return json(201, created);
};

const removeMember: Route = async (deps, event) => {
  const id = idOf(event, "member");
  await withActivity(
    deps.db,
    callerActing(deps, event),
    async (tx) => {
      if (!(await revokeMember(tx, callerProject(event), id)))
        throw new NotFoundError("No such member.");
    },
    () => ({ action: "member.revoke", targetId: id, details: {} }),
  );
  deps.logger.info("member revoked", { memberId: id, by: principalOf(event).sub });
  return noContent();
};

const addProject: Route = async (deps, event) => {
  const body = parse(NameSchema, event.parsedBody, NAME);
  const created = await deps.db.transaction(async (tx) => {
    // The project is born in this transaction: its first entry is written here.
    const { project, admin } = await createProjectWithAdmin(tx, body.name, {
      actor: actorOf(event),
      now: deps.now(),
    });
    return { ...project, admin: { clientId: admin.clientId, clientSecret: admin.clientSecret } };
  });
  return json(201, created);
};

const ROUTES: Record<string, Route> = {
  "POST /v1/devices": registerDevice,
  "DELETE /v1/devices/{id}": revoke,
  "PUT /v1/devices/{id}/scopes": putScopes,
  "POST /v1/members": addMember,
  "DELETE /v1/members/{id}": removeMember,
  "POST /v1/projects": addProject,
};

/**
 * Management routes: devices (register, scopes, revoke) and members (add, revoke) for a
 * project's admin; projects for the platform operator. Secrets appear only in
 * the creation response.
 */
export const create = (deps: DepsOf<"manage">) =>
  apiRoute(deps, { body: { maxBytes: 16 * 1024, maxDepth: 32 } }).handler(async (event) => {
    const route = ROUTES[`${event.httpMethod} ${event.resource}`];
    if (!route) throw new NotFoundError("No such route.");
    return route(deps, event);
  });

export const handler = lambdaHandler("manage", create);
