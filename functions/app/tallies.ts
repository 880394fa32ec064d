import type { Queryable } from "../adapters/db/db.ts";

/**
 * Counts kept as tallies (db/migrations/016_tallies.sql), so that no read
 * counts a project's whole history again: a tally is exact over the
 * transactions below its `below`, an xid that was a snapshot's xmin (every
 * transaction under it had ended). A read adds what the rows written since
 * say, through the pull indexes (`xid >= below`), and moves the tally up
 * to its own snapshot's xmin over the rows settled below that. Two reads at
 * once may both move it: each writes an exact pair, and the higher wins.
 *
 * Each read is two statements: the tally first, so that the second is
 * planned knowing how far back it reads (a bound hidden in a subquery is
 * planned as a third of the table, and an analysed project of one device
 * or one project was then read whole).
 */

/** The first xid a tally can start from: no row is older. */
const FIRST = "1";

/** The project's live (not deleted) reports. */
export async function liveReports(db: Queryable, projectId: string): Promise<number> {
  const [tally] = await db.query<{ below: string; live: string }>(
    "select below::text, live from report_tallies where project_id = $1",
    [projectId],
  );
  // Each report written since the tally counts as it is now, in place of
  // how the tally counted it. A row that does not say when it was created,
  // or deleted, was stored before the tallies.
  const [row] = await db.query<{ live: string }>(
    `with snap as (select pg_snapshot_xmin(pg_current_snapshot()) as upto),
       changed as (
         select count(*) filter (where r.deleted_hlc is null) as live_now,
                count(*) filter (where coalesce(r.created_xid < s.upto, true)
                                   and (r.deleted_hlc is null or r.deleted_xid >= s.upto)) as live_upto,
                count(*) filter (where $3::boolean and coalesce(r.created_xid < $2::text::xid8, true)
                                   and (r.deleted_hlc is null or r.deleted_xid >= $2::text::xid8)) as live_below
           from snap s join reports r on r.project_id = $1 and r.xid >= $2::text::xid8),
       moved as (
         insert into report_tallies (project_id, below, live)
         select $1, s.upto, $4::bigint + c.live_upto - c.live_below from snap s cross join changed c
         on conflict (project_id) do update set below = excluded.below, live = excluded.live
          where excluded.below > report_tallies.below)
     select $4::bigint + live_now - live_below as live from changed`,
    [projectId, tally?.below ?? FIRST, tally !== undefined, tally?.live ?? 0],
  );
  return Number(row!.live);
}

export interface Outcomes {
  applied: number;
  partial: number;
  superseded: number;
  rejected: number;
}

const OUTCOMES = ["applied", "partial", "superseded", "rejected"] as const;

/** Each of the project's devices' changes by outcome, by device id. */
export async function deviceOutcomes(
  db: Queryable,
  projectId: string,
): Promise<Map<string, Outcomes>> {
  // The lowest tally of the project's devices (none for a device without
  // one) bounds every device's read in the plan.
  const [lowest] = await db.query<{ below: string | null }>(
    `select min(coalesce(t.below, '${FIRST}'::xid8))::text as below
       from devices d left join device_tallies t on t.device_id = d.id where d.project_id = $1`,
    [projectId],
  );
  const counts = (settled: boolean) =>
    OUTCOMES.map(
      (o) =>
        `count(*) filter (where a.outcome = '${o}'${settled ? " and a.xid < s.upto" : ""}) as ${settled ? "settled_" : ""}${o}`,
    ).join(", ");
  const rows = await db.query<Record<string, string>>(
    `with snap as (select pg_snapshot_xmin(pg_current_snapshot()) as upto),
       counted as (
         select d.id, s.upto, ${OUTCOMES.map((o) => `coalesce(t.${o}, 0) as tally_${o}`).join(", ")}, n.*
           from devices d
           cross join snap s
           left join device_tallies t on t.device_id = d.id
           cross join lateral (
             select ${counts(false)}, ${counts(true)} from audit_log a
              where a.actor_id = d.id and a.xid >= $2::text::xid8 and a.xid >= coalesce(t.below, '${FIRST}'::xid8)) n
          where d.project_id = $1),
       moved as (
         insert into device_tallies (device_id, below, ${OUTCOMES.join(", ")})
         select id, upto, ${OUTCOMES.map((o) => `tally_${o} + settled_${o}`).join(", ")} from counted
         on conflict (device_id) do update
            set below = excluded.below, ${OUTCOMES.map((o) => `${o} = excluded.${o}`).join(", ")}
          where excluded.below > device_tallies.below)
     select id, ${OUTCOMES.map((o) => `tally_${o} + ${o} as ${o}`).join(", ")} from counted`,
    [projectId, lowest?.below ?? FIRST],
  );
  return new Map(
    rows.map((r) => [
      r.id!,
      {
        applied: Number(r.applied),
        partial: Number(r.partial),
        superseded: Number(r.superseded),
        rejected: Number(r.rejected),
      },
    ]),
  );
}
