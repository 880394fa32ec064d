import type { Queryable } from "../adapters/db/db.ts";

/**
 * Counts kept as tallies (db/migrations/016_tallies.sql), so that no read
 * counts a project's whole history again: a tally is exact over the
 * transactions below its `below`, an xid that was a snapshot's xmin (every
 * transaction under it had ended). A read adds what the rows written since
 * say, through the pull indexes (`xid >= below`; a project's conflicts
 * through `created_xid >= below`), and moves the tally up to its own
 * snapshot's xmin over the rows settled below that. Two reads at once may
 * both move it: each writes an exact pair, and the higher wins.
 *
 * Each read is two statements: the tally first, so that the second is
 * planned knowing how far back it reads (a bound hidden in a subquery is
 * planned as a third of the table, and an analysed project was then read
 * whole).
 *
 * A row that does not say when it was created (or deleted) was stored
 * before the tallies, and counts as created (deleted) before any tally.
 */

/** The first xid a tally can start from: no row is older. */
const FIRST = "1";

/** The snapshot's xmin: the tally's next `below`. */
const SNAP = "snap as (select pg_snapshot_xmin(pg_current_snapshot()) as upto)";

/**
 * Counts of the rows written since a tally (`rows`, joined with `snap s`)
 * that the tally had not counted: all of them (`fresh`), and those settled
 * below the snapshot's xmin (`settled_fresh`). `since` is the tally's
 * `below`, or null when there is none.
 */
const fresh = (rows: string, since: string) =>
  `count(*) filter (where ${since} is null or ${rows}.created_xid >= ${since}) as fresh,
   count(*) filter (where (${since} is null or ${rows}.created_xid >= ${since})
                      and coalesce(${rows}.created_xid < s.upto, true)) as settled_fresh`;

export interface ProjectTally {
  /** Reports not deleted. */
  live: number;
  conflicts: number;
}

/** The project's live (not deleted) reports and its conflicts. */
export async function projectTally(db: Queryable, projectId: string): Promise<ProjectTally> {
  const [tally] = await db.query<{ below: string; live: string; conflicts: string }>(
    "select below::text, live, conflicts from project_tallies where project_id = $1",
    [projectId],
  );
  // A report written since counts as it is now, in place of how the tally
  // counted it (live at its `below`).
  const liveAt = (xid: string) =>
    `coalesce(r.created_xid < ${xid}, true) and (r.deleted_hlc is null or r.deleted_xid >= ${xid})`;
  const [row] = await db.query<{ live: string; conflicts: string }>(
    `with ${SNAP},
       reports_since as (
         select count(*) filter (where r.deleted_hlc is null) as live_now,
                count(*) filter (where ${liveAt("s.upto")}) as live_upto,
                count(*) filter (where $2::xid8 is not null and ${liveAt("$2::xid8")}) as live_below
           from snap s join reports r on r.project_id = $1 and r.xid >= coalesce($2::xid8, '${FIRST}')),
       conflicts_since as (
         select ${fresh("c", "$2::xid8")}
           from snap s join conflicts c on c.project_id = $1 and ${tally ? "c.created_xid >= $2::xid8" : "true"}),
       moved as (
         insert into project_tallies (project_id, below, live, conflicts)
         select $1, s.upto, $3::bigint + r.live_upto - r.live_below, $4::bigint + c.settled_fresh
           from snap s, reports_since r, conflicts_since c
         on conflict (project_id) do update
            set below = excluded.below, live = excluded.live, conflicts = excluded.conflicts
          where excluded.below > project_tallies.below)
     select $3::bigint + r.live_now - r.live_below as live, $4::bigint + c.fresh as conflicts
       from reports_since r, conflicts_since c`,
    [projectId, tally?.below ?? null, tally?.live ?? 0, tally?.conflicts ?? 0],
  );
  return { live: Number(row!.live), conflicts: Number(row!.conflicts) };
}

const OUTCOMES = ["applied", "partial", "superseded", "rejected"] as const;

export type DeviceTally = Record<(typeof OUTCOMES)[number] | "conflicts", number>;

/** Each of the project's devices' changes by outcome, and the conflicts it took part in, by device id. */
export async function deviceTallies(
  db: Queryable,
  projectId: string,
): Promise<Map<string, DeviceTally>> {
  // The lowest tally of the project's devices (none for a device without
  // one) bounds every device's read in the plan.
  const [lowest] = await db.query<{ below: string | null }>(
    `select min(coalesce(t.below, '${FIRST}'::xid8))::text as below
       from devices d left join device_tallies t on t.device_id = d.id where d.project_id = $1`,
    [projectId],
  );
  // Rows written since the device's tally, within the project's lowest.
  const since = (rows: string) =>
    `${rows}.xid >= $2::xid8 and ${rows}.xid >= coalesce(t.below, '${FIRST}')`;
  // Audit rows are never rewritten: every one since the tally is new.
  const outcomes = OUTCOMES.flatMap((o) => [
    `count(*) filter (where a.outcome = '${o}') as ${o}`,
    `count(*) filter (where a.outcome = '${o}' and a.xid < s.upto) as settled_${o}`,
  ]).join(", ");
  const bySide = (side: string, other: string) =>
    `select c.created_xid from conflicts c
      where c.${side}_device_id = d.id::text ${other} and ${since("c")}`;
  const counts = [...OUTCOMES, "conflicts"] as const;
  const rows = await db.query<Record<string, string>>(
    `with ${SNAP},
       counted as (
         select d.id, s.upto, ${counts.map((k) => `coalesce(t.${k}, 0) as tally_${k}`).join(", ")}, o.*,
                k.fresh as conflicts, k.settled_fresh as settled_conflicts
           from devices d
           cross join snap s
           left join device_tallies t on t.device_id = d.id
           cross join lateral (select ${outcomes} from audit_log a where a.actor_id = d.id and ${since("a")}) o
           cross join lateral (
             select ${fresh("c", "t.below")}
               from (${bySide("winner", "")}
                     union all
                     ${bySide("loser", "and c.winner_device_id <> d.id::text")}) c) k
          where d.project_id = $1),
       moved as (
         insert into device_tallies (device_id, below, ${counts.join(", ")})
         -- In one order, so that two reads at once lock the rows alike (no deadlock).
         select id, upto, ${counts.map((k) => `tally_${k} + settled_${k}`).join(", ")} from counted order by id
         on conflict (device_id) do update
            set below = excluded.below, ${counts.map((k) => `${k} = excluded.${k}`).join(", ")}
          where excluded.below > device_tallies.below)
     select id, ${counts.map((k) => `tally_${k} + ${k} as ${k}`).join(", ")} from counted`,
    [projectId, lowest?.below ?? FIRST],
  );
  return new Map(
    rows.map((r) => [
      r.id!,
      Object.fromEntries(counts.map((k) => [k, Number(r[k])])) as DeviceTally,
    ]),
  );
}
