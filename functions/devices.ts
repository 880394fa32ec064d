import middy from "@middy/core";
import type { APIGatewayProxyResult } from "aws-lambda";
import { z } from "zod";
import { ValidationError } from "../core/errors.ts";
import { type Deps, lambdaHandler } from "./lib/deps.ts";
import {
  type ApiEvent,
  authorize,
  httpErrors,
  json,
  jsonBody,
  principalOf,
  projectOf,
} from "./lib/http.ts";
import { createDevice } from "./lib/identity.ts";

const CreateDeviceSchema = z.strictObject({ name: z.string().trim().min(1).max(200) });

/** `POST /v1/devices` (admin): registers a device; its secret is shown only in this response. */
export const create = (deps: Deps) =>
  middy<ApiEvent, APIGatewayProxyResult>()
    .use(httpErrors(deps.logger))
    .use(authorize())
    .use(jsonBody(16 * 1024))
    .handler(async (event) => {
      const projectId = projectOf(principalOf(event));
      const body = CreateDeviceSchema.safeParse(event.parsedBody);
      if (!body.success)
        throw new ValidationError('The body must be {"name": "…"} (1 to 200 characters).');
      const device = await createDevice(deps.db, projectId, body.data.name);
      return json(201, device);
    });

export const handler = lambdaHandler(create);
