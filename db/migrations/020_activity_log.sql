-- The activity log: who changed who may do what in a project, and who took
-- its data out (core/activity.ts). The audit log holds reports' changes;
-- this holds the actions around them, which before left a trace only in the
-- functions' logs: devices and members added and revoked, scopes set, legal
-- holds placed and lifted (a lifted hold kept no trace of who had placed
-- it, or who lifted it), retention set, evidence exported.
--
-- One hash chain per project: each entry's hash covers the one before it.
-- An entry is appended in the same transaction as its action, after taking
-- the project's row `for no key update`, which orders a project's appends
-- and does not wait for the foreign-key checks of the apply path (`for key
-- share`). Append-only, like the audit log.
create table activity_log (
  seq bigint generated always as identity primary key,
  project_id uuid not null references projects (id),
  at timestamptz not null,
  actor_type text not null check (actor_type in ('member', 'operator')),
  actor_id uuid not null,
  action text not null,
  target_id uuid,
  details jsonb not null,
  prev_hash text,
  hash text not null
);
create index activity_project_seq on activity_log (project_id, seq);
-- No two entries follow the same one: a chain cannot fork, whatever a
-- writer forgot to lock.
create unique index activity_chain on activity_log (project_id, prev_hash) nulls not distinct;

create function activity_log_guard() returns trigger language plpgsql as $$
begin
  raise exception 'activity_log is append-only: % refused', tg_op
    using errcode = 'insufficient_privilege';
end
$$;
create trigger activity_log_append_only
  before update or delete on activity_log
  for each row execute function activity_log_guard();
create trigger activity_log_no_truncate
  before truncate on activity_log
  for each statement execute function activity_log_guard();
