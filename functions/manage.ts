import { z } from "zod";
import { NotFoundError, ValidationError } from "../core/errors.ts";
import type { Role } from "../core/types.ts";
import { MemberRequestSchema, NameSchema } from "../core/wire.ts";
import { createDevice, createMember, createProject, revokeDevice } from "./app/identity.ts";
import { type DepsOf, lambdaHandler } from "./deps.ts";
import { apiRoute } from "./http/api-route.ts";
import { json, noContent, principalOf, projectOf } from "./http/middleware.ts";

const uuid = z.uuid();

function parse<T>(schema: z.ZodType<T>, body: unknown, shape: string): T {
  const parsed = schema.safeParse(body);
  if (!parsed.success) throw new ValidationError(`The body must be ${shape}.`);
  return parsed.data;
}

/**
 * Management routes: devices (register, revoke) and members for a
 * project's admin; projects for the platform operator. Secrets appear only in
 * the creation response.
 */
export const create = (deps: DepsOf<"manage">) =>
  apiRoute(deps, { body: { maxBytes: 16 * 1024, maxDepth: 32 } }).handler(async (event) => {
    const principal = principalOf(event);
    switch (`${event.httpMethod} ${event.resource}`) {
      case "POST /v1/devices": {
        const body = parse(NameSchema, event.parsedBody, '{"name": "…"} (1 to 200 characters)');
        return json(201, await createDevice(deps.db, projectOf(principal), body.name));
      }
      case "DELETE /v1/devices/{id}": {
        const id = event.pathParameters?.id ?? "";
        // Another project's device, or none at all, is the same answer.
        if (
          !uuid.safeParse(id).success ||
          !(await revokeDevice(deps.db, projectOf(principal), id))
        ) {
          throw new NotFoundError("No such device.");
        }
        return noContent();
      }
      case "POST /v1/members": {
        const body = parse(
          MemberRequestSchema,
          event.parsedBody,
          '{"name": "…", "role": "analyst" | "auditor" | "admin"}',
        );
        const member = await createMember(
          deps.db,
          projectOf(principal),
          body.name,
          body.role as Exclude<Role, "device">,
        );
        return json(201, member);
      }
      case "POST /v1/projects": {
        const body = parse(NameSchema, event.parsedBody, '{"name": "…"} (1 to 200 characters)');
        const created = await deps.db.transaction(async (tx) => {
          const project = await createProject(tx, body.name);
          const admin = await createMember(tx, project.id, `${body.name} admin`, "admin");
          return {
            ...project,
            admin: { clientId: admin.clientId, clientSecret: admin.clientSecret },
          };
        });
        return json(201, created);
      }
      default:
        throw new NotFoundError("No such route.");
    }
  });

export const handler = lambdaHandler("manage", create);
