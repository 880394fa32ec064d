-- Scopes (DESIGN.md, "Scopes"): a report may belong to one scope, fixed by
-- the change that creates it; a device with scopes syncs only those.
alter table reports add column scope text collate "C";

-- A scoped device's pull reads one ordered range of this index per scope,
-- so its cost follows what the device receives, not the project's size.
-- Reports without a scope (a project that does not use scopes) pay nothing
-- for it.
create index reports_scope_pull on reports (project_id, scope, xid, id) where scope is not null;

-- The scopes a device may sync (none: the whole project) and how many times
-- they were set. A pull cursor names the version it was settled at, so a
-- device, even one restored from an old backup, is sent what it lacks.
alter table devices
  add column scopes text[] collate "C" not null default '{}',
  add column scope_version integer not null default 0;

-- Every setting of a device's scopes: version 0 is the whole project.
create table device_scope_log (
  device_id uuid not null references devices (id),
  version integer not null,
  scopes text[] collate "C" not null,
  set_by uuid,
  set_at timestamptz not null default now(),
  primary key (device_id, version)
);
