-- Counts the dashboard polls, kept without counting every row again.
-- GET /v1/status counted the project's live reports and conflicts, and
-- GET /v1/devices each device's audit rows by outcome and its conflicts:
-- every row, on every call (25-64 ms at 100,000 reports, growing with the
-- project, every 4 s for each open dashboard).
--
-- A tally holds a count over everything that happened in transactions
-- below `below`, an xid that was once a snapshot's xmin: every transaction
-- under it had ended, so nothing below it can still change. A read adds
-- what the rows changed since (`xid >= below`, through the pull indexes)
-- say, and moves the tally up to its own snapshot's xmin
-- (functions/app/tallies.ts). Nothing is added to the apply path but
-- columns the row's own insert or upsert fills.
--
-- `xid` is when a row last changed; a tally also needs when it was created
-- (a report edited since is not a new one; a conflict whose values were
-- erased is sent again, not detected again) and when a report was
-- deleted. Rows stored before this migration have neither: they count as
-- created, and deleted, before any tally.
alter table reports add column created_xid xid8, add column deleted_xid xid8;
alter table reports alter column created_xid set default pg_current_xact_id();
alter table conflicts add column created_xid xid8;
alter table conflicts alter column created_xid set default pg_current_xact_id();

-- A project's conflicts detected since a tally. It replaces
-- conflicts_project (project, detected_at), which conflicts_listing
-- already served. Not (project, xid): without statistics a device's pull
-- of its conflicts took that index over its own (winner or loser, xid).
drop index conflicts_project;
create index conflicts_project_created on conflicts (project_id, created_xid);

-- A project's live (not deleted) reports and its conflicts, below `below`.
create table project_tallies (
  project_id uuid primary key references projects (id) on delete cascade,
  below xid8 not null,
  live bigint not null,
  conflicts bigint not null
);

-- A device's audit rows by outcome, and the conflicts it took part in, below `below`.
create table device_tallies (
  device_id uuid primary key references devices (id) on delete cascade,
  below xid8 not null,
  applied bigint not null,
  partial bigint not null,
  superseded bigint not null,
  rejected bigint not null,
  conflicts bigint not null
);
