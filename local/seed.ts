import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { Db } from "../functions/adapters/db/db.ts";
import { createMember, createProjectWithAdmin } from "../functions/app/identity.ts";

export interface Credentials {
  apiUrl: string;
  operator: { clientId: string; clientSecret: string };
  projects: Record<string, { id: string; admin: { clientId: string; clientSecret: string } }>;
}

export const credentialsPath = (dataDir: string) => join(dataDir, "credentials.json");

/**
 * First start: creates the `demo` project with an admin client and a platform
 * operator client, and writes their secrets to `DATA_DIR/credentials.json`
 * (mode 0600): the only place they are ever shown. Later starts only update
 * `apiUrl` in that file. The project's activity log begins as any project's
 * does: the operator created it (here on the operator's behalf, as
 * `POST /v1/projects` would have).
 */
export async function seed(db: Db, dataDir: string, apiUrl: string): Promise<Credentials> {
  const path = credentialsPath(dataDir);
  let credentials: Credentials;
  try {
    credentials = { ...(JSON.parse(await readFile(path, "utf8")) as Credentials), apiUrl };
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
    credentials = await db.transaction(async (tx) => {
      const operator = await createMember(tx, null, "platform operator", "operator");
      const { project, admin } = await createProjectWithAdmin(tx, "demo", {
        actor: { type: "operator", id: operator.id },
        now: Date.now(),
      });
      return {
        apiUrl,
        operator: { clientId: operator.clientId, clientSecret: operator.clientSecret },
        projects: {
          demo: {
            id: project.id,
            admin: { clientId: admin.clientId, clientSecret: admin.clientSecret },
          },
        },
      };
    });
  }
  await writeFile(path, `${JSON.stringify(credentials, null, 2)}\n`, { mode: 0o600 });
  return credentials;
}
