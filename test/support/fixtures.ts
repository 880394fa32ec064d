import type { Queryable } from "../../functions/adapters/db/db.ts";
import { createDevice, createProject } from "../../functions/app/identity.ts";
import { createTestDb, type DbTarget } from "./db.ts";

/** A project with `deviceCount` devices, straight in the database. */
export async function seedProject(db: Queryable, deviceCount = 2) {
  const project = await createProject(db, `project-${crypto.randomUUID().slice(0, 8)}`);
  const devices = [];
  for (let i = 0; i < deviceCount; i++)
    devices.push(await createDevice(db, project.id, `device ${i + 1}`));
  return { project, devices };
}

/** A fresh database with one project and one device, for the database suites' beforeAll. */
export async function seededDb(target: DbTarget) {
  const t = await createTestDb(target);
  const { project, devices } = await seedProject(t.db, 1);
  return { t, projectId: project.id, device: devices[0]!.id };
}
