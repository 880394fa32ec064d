import type { Queryable } from "../../functions/lib/db/db.ts";
import { createDevice, createProject } from "../../functions/lib/identity.ts";

/** A project with `deviceCount` devices, straight in the database. */
export async function seedProject(db: Queryable, deviceCount = 2) {
  const project = await createProject(db, `project-${crypto.randomUUID().slice(0, 8)}`);
  const devices = [];
  for (let i = 0; i < deviceCount; i++)
    devices.push(await createDevice(db, project.id, `device ${i + 1}`));
  return { project, devices };
}
