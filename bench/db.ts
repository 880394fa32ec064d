import type { JsonObject } from "../core/json.ts";
import type { Db } from "../functions/adapters/db/db.ts";
import { migrate } from "../functions/adapters/db/migrate.ts";
import { createPostgresDb } from "../functions/adapters/db/postgres.ts";
import { createDevice, createProject } from "../functions/app/identity.ts";

export interface Device {
  id: string;
  projectId: string;
}

export interface BenchDb {
  db: Db;
  /** A new project with `count` devices. */
  devices(count: number): Promise<[Device, Device, ...Device[]]>;
  drop(): Promise<void>;
}

/**
 * A database created for one benchmark: a new schema on the server
 * (`DATABASE_URL`, default the local test database), migrated and never
 * analysed, as a new deployment starts.
 */
export async function benchDb(max: number): Promise<BenchDb> {
  const connectionString = process.env.DATABASE_URL || "postgres://postgres@127.0.0.1:5432/test";
  const schema = `bench_${Date.now()}`;
  const admin = createPostgresDb({ connectionString, max: 1 });
  await admin.exec(`create schema ${schema}`);
  await admin.exec("create extension if not exists pg_trgm schema public");
  const db = createPostgresDb({ connectionString, schema, max });
  await migrate(db);
  return {
    db,
    async devices(count) {
      const project = await createProject(db, `bench ${crypto.randomUUID().slice(0, 8)}`);
      const devices: Device[] = [];
      for (let i = 0; i < count; i++) {
        const device = await createDevice(db, project.id, `device ${i + 1}`);
        devices.push({ id: device.id, projectId: project.id });
      }
      return devices as [Device, Device, ...Device[]];
    },
    async drop() {
      await db.close();
      await admin.exec(`drop schema ${schema} cascade`);
      await admin.close();
    },
  };
}

const FIELDS = ["title", "severity", "notes"] as const;

/** `count` of a report's three fields, with values that vary with `seed`. */
export function fieldsFor(seed: number, count: number): JsonObject {
  const values = {
    title: `Report ${seed}`,
    severity: seed % 5,
    notes: `checked on site at step ${seed}, pump replaced`,
  };
  return Object.fromEntries(FIELDS.slice(0, count).map((f) => [f, values[f]]));
}

/** The base a new report's first change carries from the agent: it saw none of its fields. */
export const unseen = (fields: JsonObject): Record<string, null> =>
  Object.fromEntries(Object.keys(fields).map((f) => [f, null]));

export async function timed(work: () => Promise<unknown>): Promise<number> {
  const started = performance.now();
  await work();
  return performance.now() - started;
}

/**
 * Writes `count` reports into the devices' project straight in SQL, each
 * with one audit row and its chain head: what years of syncing leave behind.
 * Reports were created one a minute up to now and last edited within the
 * following day. Each report's notes name one of 500 lots ("lot 042"), so
 * a search for a lot matches one report in 500, and every report mentions
 * "pump". With `scopes`, report g is in scope `site-` g modulo `scopes`
 * (four digits). Nothing is analysed.
 */
export async function seedReports(
  bench: BenchDb,
  device: Device,
  count: number,
  { scopes = 0 }: { scopes?: number } = {},
): Promise<void> {
  const step = 50_000;
  for (let from = 1; from <= count; from += step) {
    const to = Math.min(count, from + step - 1);
    await bench.db.query(
      `with r as (
         insert into reports (project_id, id, fields, clocks, writers, version, created_by, updated_by,
                              created_at, updated_at, scope, chain_head)
         select $1::uuid, id,
                jsonb_build_object('title', 'Report ' || g, 'severity', g % 5,
                                   'notes', 'lot ' || lpad((g % 500)::text, 3, '0') || ', pump replaced'),
                jsonb_build_object('title', h, 'severity', h, 'notes', h),
                jsonb_build_object('title', w, 'severity', w, 'notes', w), 1, $2::uuid, $2::uuid,
                at, at + (g % 1440) * interval '1 minute',
                case when $6::int > 0 then 'site-' || lpad((g % $6::int)::text, 4, '0') end,
                md5(id::text) || md5(id::text)
           from generate_series($3::int, $4::int) g,
                lateral (select lpad((1000000 + g)::text, 15, '0') || ':000000:' || $2 as h,
                                gen_random_uuid() as w, gen_random_uuid() as id,
                                now() - ($5::int - g) * interval '1 minute' as at) x
         returning project_id, id, fields, clocks, chain_head)
       insert into audit_log (project_id, change_id, report_id, actor_type, actor_id, op, hlc, outcome,
                              fields_applied, before, after, received_at, applied_at, prev_hash, hash)
       select project_id, gen_random_uuid(), id, 'device', $2::uuid, 'upsert', clocks->>'title', 'applied',
              '{title,severity,notes}', '{}', fields, now(), now(), null, chain_head
         from r`,
      [device.projectId, device.id, from, to, count, scopes],
    );
  }
  // Written back now, as it would long since have been: otherwise the first
  // reads after a bulk write each evict (and write) a dirty page.
  await bench.db.exec("checkpoint");
}
