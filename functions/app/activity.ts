import * as z from "zod";
import { type ActivityCheck, activityHash, checkActivity } from "../../core/activity.ts";
import type { JsonObject } from "../../core/json.ts";
import type { ActivityAction, ActivityEntry } from "../../core/wire-fleet.ts";
import type { Db, Queryable } from "../adapters/db/db.ts";
import { decode, keysetPage, type Page } from "./listing.ts";

export interface Activity {
  action: ActivityAction;
  actor: ActivityEntry["actor"];
  targetId: string | null;
  details: JsonObject;
}

/**
 * Appends an action to its project's activity chain. Call it inside the
 * transaction that carries out the action: the two commit together or not
 * at all. The project's row, taken `for no key update`, orders the
 * project's appends (migration 020).
 */
export async function recordActivity(
  tx: Queryable,
  projectId: string,
  activity: Activity,
  now: number,
): Promise<void> {
  // The head is read by a statement of its own, after the lock: its
  // snapshot then sees the entry of whoever held the lock before.
  const locked = await tx.query("select 1 from projects where id = $1 for no key update", [
    projectId,
  ]);
  if (locked.length === 0) throw new Error(`no project ${projectId}`);
  const [head] = await tx.query<{ hash: string }>(
    "select hash from activity_log where project_id = $1 order by seq desc limit 1",
    [projectId],
  );
  const entry = {
    projectId,
    at: new Date(now).toISOString(),
    ...activity,
    prevHash: head?.hash ?? null,
  };
  await tx.query(
    `insert into activity_log
       (project_id, at, actor_type, actor_id, action, target_id, details, prev_hash, hash)
     values ($1, $2::timestamptz, $3, $4, $5, $6, $7::jsonb, $8, $9)`,
    [
      projectId,
      entry.at,
      entry.actor.type,
      entry.actor.id,
      entry.action,
      entry.targetId,
      JSON.stringify(entry.details),
      entry.prevHash,
      activityHash(entry),
    ],
  );
}

/**
 * Runs `work` in one transaction and records it in the project's activity
 * log as `describe` tells of its result: an action and its entry commit
 * together or not at all.
 */
export function withActivity<T>(
  db: Db,
  by: { projectId: string; actor: Activity["actor"]; now: () => number },
  work: (tx: Queryable) => Promise<T>,
  describe: (result: T) => Omit<Activity, "actor">,
): Promise<T> {
  return db.transaction(async (tx) => {
    const result = await work(tx);
    await recordActivity(tx, by.projectId, { actor: by.actor, ...describe(result) }, by.now());
    return result;
  });
}

interface ActivityRow {
  seq: string;
  at: Date;
  actor_type: ActivityEntry["actor"]["type"];
  actor_id: string;
  action: ActivityAction;
  target_id: string | null;
  details: JsonObject;
  prev_hash: string | null;
  hash: string;
}

const entryOf =
  (projectId: string) =>
  (r: ActivityRow): ActivityEntry => ({
    seq: Number(r.seq),
    projectId,
    at: r.at.toISOString(),
    actor: { type: r.actor_type, id: r.actor_id },
    action: r.action,
    targetId: r.target_id,
    details: r.details,
    prevHash: r.prev_hash,
    hash: r.hash,
  });

const COLUMNS = "seq, at, actor_type, actor_id, action, target_id, details, prev_hash, hash";

/** What `GET /v1/activity` takes: a page, its order, and which entries. */
export interface ActivityQuery {
  limit: number;
  cursor?: string | undefined;
  order: "oldest" | "newest";
  action?: ActivityAction | undefined;
  actorId?: string | undefined;
  targetId?: string | undefined;
}

/**
 * A project's activity in pages (`GET /v1/activity`), oldest or newest
 * first, all of it or one action's, one actor's or one target's. A project's
 * log is admins' actions, thousands at most: a filter reads it along
 * `(project_id, seq)` and needs no index of its own.
 */
export async function listActivity(
  db: Queryable,
  projectId: string,
  { limit, cursor, order, action, actorId, targetId }: ActivityQuery,
): Promise<Page<ActivityEntry>> {
  // A newest-first cursor says so, so that neither order's cursor is read as the other's.
  const newest = order === "newest";
  const from = newest
    ? decode(cursor, z.tuple([z.number().int().nonnegative(), z.literal("newest")]))?.[0]
    : decode(cursor, z.tuple([z.number().int().nonnegative()]))?.[0];
  const params: unknown[] = [projectId, limit + 1];
  const where = ["project_id = $1"];
  const and = (condition: (placeholder: string) => string, value: unknown) => {
    if (value !== undefined) where.push(condition(`$${params.push(value)}`));
  };
  and((p) => (newest ? `seq < ${p}` : `seq > ${p}`), from);
  and((p) => `action = ${p}`, action);
  and((p) => `actor_id = ${p}::uuid`, actorId);
  and((p) => `target_id = ${p}::uuid`, targetId);
  const rows = await db.query<ActivityRow>(
    `select ${COLUMNS} from activity_log where ${where.join(" and ")}
      order by seq ${newest ? "desc" : ""} limit $2`,
    params,
  );
  return keysetPage(rows, limit, entryOf(projectId), (r) =>
    newest ? [Number(r.seq), "newest"] : [Number(r.seq)],
  );
}

/**
 * Recomputes a project's whole activity chain. It holds the actions of
 * admins, not of devices: a few thousand entries in a project's life,
 * checked in one read.
 */
export async function verifyActivity(db: Queryable, projectId: string): Promise<ActivityCheck> {
  const rows = await db.query<ActivityRow>(
    `select ${COLUMNS} from activity_log where project_id = $1 order by seq`,
    [projectId],
  );
  return checkActivity(rows.map(entryOf(projectId)));
}
