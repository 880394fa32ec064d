import * as z from "zod";
import { EdgeSyncError } from "../../core/errors.ts";
import type { Role } from "../../core/types.ts";
import type { IssuedCredentials, Member } from "../../core/wire-fleet.ts";
import { hashSecret, newCredentials } from "../adapters/auth/secrets.ts";
import type { Queryable } from "../adapters/db/db.ts";
import { type Activity, recordActivity } from "./activity.ts";
import { decode, keysetPage, type Page } from "./listing.ts";

export interface PrincipalRow {
  id: string;
  project_id: string | null;
  role: Role;
  name: string;
  secret_hash: string;
  revoked_at: Date | null;
}

/** Who holds a client id (a device or a member), revoked or not. */
export const findPrincipalByClientId = (db: Queryable, clientId: string) =>
  findPrincipal(db, "client_id", clientId);

/** A device or member by id, revoked or not. */
export const findPrincipalById = (db: Queryable, id: string) => findPrincipal(db, "id", id);

async function findPrincipal(
  db: Queryable,
  by: "client_id" | "id",
  value: string,
): Promise<PrincipalRow | undefined> {
  const rows = await db.query<PrincipalRow>(
    `select id, project_id, role, name, secret_hash, revoked_at from principals where ${by} = $1`,
    [value],
  );
  return rows[0];
}

export async function createProject(
  db: Queryable,
  name: string,
): Promise<{ id: string; name: string }> {
  const id = crypto.randomUUID();
  await db.query("insert into projects (id, name) values ($1, $2)", [id, name]);
  return { id, name };
}

/**
 * A new project with its first admin, and its activity log's first entry
 * (who created it), in the caller's transaction: `POST /v1/projects`, and the
 * local cloud's demo project at first start, on the operator's behalf.
 */
export async function createProjectWithAdmin(
  tx: Queryable,
  name: string,
  by: { actor: Activity["actor"]; now: number },
) {
  const project = await createProject(tx, name);
  const admin = await createMember(tx, project.id, `${name} admin`, "admin");
  await recordActivity(
    tx,
    project.id,
    {
      actor: by.actor,
      action: "project.create",
      targetId: project.id,
      details: { name: project.name, admin: admin.id },
    },
    by.now,
  );
  return { project, admin };
}

/**
 * Registers a device, syncing the given scopes (none: the whole project);
 * its secret is returned here and stored only as a hash.
 */
export async function createDevice(
  db: Queryable,
  projectId: string,
  name: string,
  scopes: string[] = [],
  setBy: string | null = null,
): Promise<IssuedCredentials & { scopes: string[] }> {
  const id = crypto.randomUUID();
  const credentials = newCredentials("dev");
  await db.query(
    "insert into devices (id, project_id, name, client_id, secret_hash) values ($1, $2, $3, $4, $5)",
    [id, projectId, name, credentials.clientId, await hashSecret(credentials.clientSecret)],
  );
  if (scopes.length) await setDeviceScopes(db, projectId, id, scopes, setBy);
  return { id, name, ...credentials, scopes };
}

/**
 * Sets the scopes a device syncs (DESIGN.md, "Scopes"); none: the whole
 * project. Its next pull delivers the reports of scopes added and evicts
 * those of scopes removed; ingest refuses its changes outside them from its
 * next push. Each setting is kept, with who made it.
 *
 * @returns the scopes set, or undefined when the project has no such device.
 */
export async function setDeviceScopes(
  db: Queryable,
  projectId: string,
  deviceId: string,
  scopes: string[],
  setBy: string | null,
): Promise<string[] | undefined> {
  const [row] = await db.query<{ scopes: string[] }>(
    `with device as (
       select id, scopes from devices where id = $1 and project_id = $2 for update),
     changed as (
       update devices d set scopes = $3::text[], scope_version = d.scope_version + 1
         from device where d.id = device.id and device.scopes is distinct from $3::text[]
       returning d.id, d.scope_version),
     logged as (
       insert into device_scope_log (device_id, version, scopes, set_by)
       select id, scope_version, $3::text[], $4::uuid from changed)
     select $3::text[] as scopes from device`,
    [deviceId, projectId, scopes, setBy],
  );
  return row?.scopes;
}

/** Adds a member (analyst, auditor, admin) to a project, or the operator (no project). */
export async function createMember(
  db: Queryable,
  projectId: string | null,
  name: string,
  role: Exclude<Role, "device">,
): Promise<IssuedCredentials & { role: Role }> {
  const id = crypto.randomUUID();
  const credentials = newCredentials(role === "operator" ? "op" : "mem");
  await db.query(
    "insert into members (id, project_id, name, role, client_id, secret_hash) values ($1, $2, $3, $4, $5, $6)",
    [id, projectId, name, role, credentials.clientId, await hashSecret(credentials.clientSecret)],
  );
  return { id, name, role, ...credentials };
}

/**
 * Revokes a device of a project: its credentials stop working at once, its
 * tokens when the authorizer next checks (within the cache TTL). Revoking
 * twice is fine.
 *
 * @returns false when the project has no such device.
 */
export async function revokeDevice(
  db: Queryable,
  projectId: string,
  deviceId: string,
): Promise<boolean> {
  const rows = await db.query(
    "update devices set revoked_at = coalesce(revoked_at, now()) where id = $1 and project_id = $2 returning id",
    [deviceId, projectId],
  );
  return rows.length === 1;
}

/** Revoking this admin would leave the project with no one to manage it. */
export class LastAdminError extends EdgeSyncError {
  override name = "LastAdminError";
  constructor() {
    super(
      "last_admin",
      "This is the project's only admin whose credentials work; add another admin before revoking this one.",
      409,
    );
  }
}

/**
 * Revokes a member of a project (analyst, auditor or admin): their
 * credentials stop working at once, their tokens when the authorizer next
 * checks (within the cache TTL). Revoking twice is fine. A project always
 * keeps one admin whose credentials work: no one else can add members to
 * it, and the operator reads and manages no project. Run it in a
 * transaction: the project's working admins are locked first, so two admins
 * revoking each other at the same moment cannot both succeed.
 *
 * @returns false when the project has no such member.
 * @throws LastAdminError for the project's last working admin.
 */
export async function revokeMember(
  db: Queryable,
  projectId: string,
  memberId: string,
): Promise<boolean> {
  const admins = await db.query<{ id: string }>(
    `select id from members where project_id = $1 and role = 'admin' and revoked_at is null
      order by id for update`,
    [projectId],
  );
  if (admins.length === 1 && admins[0]!.id === memberId) throw new LastAdminError();
  const rows = await db.query(
    `update members set revoked_at = coalesce(revoked_at, now())
      where id = $1 and project_id = $2 returning id`,
    [memberId, projectId],
  );
  return rows.length === 1;
}

interface MemberRow {
  id: string;
  name: string;
  role: Member["role"];
  client_id: string;
  created_at: Date;
  revoked_at: Date | null;
  page_key: string;
}

/** A project's members, revoked ones too, oldest first, in pages. */
export async function listMembers(
  db: Queryable,
  projectId: string,
  { limit, cursor }: { limit: number; cursor?: string | undefined },
): Promise<Page<Member>> {
  const after = decode(cursor, z.tuple([z.string().max(64), z.uuid()]));
  const rows = await db.query<MemberRow>(
    `select id, name, role, client_id, created_at, revoked_at, created_at::text as page_key
       from members
      where project_id = $1 ${after ? "and (created_at, id) > ($3::timestamptz, $4::uuid)" : ""}
      order by created_at, id
      limit $2`,
    [projectId, limit + 1, ...(after ?? [])],
  );
  return keysetPage(
    rows,
    limit,
    (r) => ({
      id: r.id,
      name: r.name,
      role: r.role,
      clientId: r.client_id,
      createdAt: r.created_at.toISOString(),
      revokedAt: r.revoked_at?.toISOString() ?? null,
    }),
    (r) => [r.page_key, r.id],
  );
}
