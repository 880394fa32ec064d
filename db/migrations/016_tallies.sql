-- Counts the dashboard polls, kept without counting every row again.
-- GET /v1/status counted the project's live reports and GET /v1/devices
-- each device's audit rows by outcome: every row, on every call (37 ms and
-- 30 ms at 100,000 reports, ten times that at 1,000,000, every 4 s for
-- each open dashboard).
--
-- A tally holds a count over everything that happened in transactions
-- below `below`, an xid that was once a snapshot's xmin: every transaction
-- under it had ended, so nothing below it can still change. A read adds
-- what the rows changed since (`xid >= below`, through the pull indexes)
-- say, and moves the tally up to its own snapshot's xmin (`projectCounts`
-- in functions/app/read.ts, `listDevices` in functions/app/fleet.ts).
-- Nothing is added to the apply path but two columns the row's own insert
-- or upsert fills.
--
-- Rows stored before this migration have no created_xid (and, if deleted,
-- no deleted_xid): they count as created, and deleted, before any tally.
alter table reports add column created_xid xid8, add column deleted_xid xid8;
alter table reports alter column created_xid set default pg_current_xact_id();

-- Live reports (not deleted) of a project, below `below`.
create table report_tallies (
  project_id uuid primary key references projects (id) on delete cascade,
  below xid8 not null,
  live bigint not null
);

-- A device's audit rows by outcome, below `below`.
create table device_tallies (
  device_id uuid primary key references devices (id) on delete cascade,
  below xid8 not null,
  applied bigint not null,
  partial bigint not null,
  superseded bigint not null,
  rejected bigint not null
);
