-- Tenants, their credentials, reports, the audit log and conflicts.
-- Every table that pulls read carries `xid`: the id of the transaction that
-- last wrote the row (pg_current_xact_id()). See "Pull cursor" in DESIGN.md.

create table projects (
  id uuid primary key,
  name text not null,
  created_at timestamptz not null default now()
);

-- Field devices. A client secret is stored only as an scrypt hash.
create table devices (
  id uuid primary key,
  project_id uuid not null references projects (id),
  name text not null,
  client_id text not null unique,
  secret_hash text not null,
  created_at timestamptz not null default now(),
  revoked_at timestamptz,
  last_seen_at timestamptz,
  last_push_at timestamptz,
  last_pull_at timestamptz
);
create index devices_project on devices (project_id);

-- People and services: analysts, auditors, admins; the platform operator has
-- no project.
create table members (
  id uuid primary key,
  project_id uuid references projects (id),
  name text not null,
  role text not null check (role in ('analyst', 'auditor', 'admin', 'operator')),
  client_id text not null unique,
  secret_hash text not null,
  created_at timestamptz not null default now(),
  revoked_at timestamptz,
  check ((role = 'operator') = (project_id is null))
);
create index members_project on members (project_id);

-- Everyone who can ask for a token, for the token route's one lookup.
create view principals as
  select id, project_id, 'device'::text as role, name, client_id, secret_hash, revoked_at from devices
  union all
  select id, project_id, role, name, client_id, secret_hash, revoked_at from members;

-- Merged report state: per-field LWW registers (fields, clocks, writers).
create table reports (
  project_id uuid not null references projects (id),
  id uuid not null,
  fields jsonb not null default '{}',
  clocks jsonb not null default '{}',
  writers jsonb not null default '{}',
  deleted_hlc text collate "C",
  version integer not null default 0,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  created_by uuid,
  updated_by uuid,
  xid xid8 not null default pg_current_xact_id(),
  primary key (project_id, id)
);
-- Pull: reports of a project changed at or after a cursor, in (xid, id) order.
create index reports_pull on reports (project_id, xid, id);

-- One row per change, ever. Append-only (a later migration adds the guard
-- trigger and the hash chain).
create table audit_log (
  seq bigint generated always as identity primary key,
  project_id uuid not null references projects (id),
  change_id uuid not null,
  report_id uuid,
  actor_type text not null check (actor_type in ('device', 'member')),
  actor_id uuid not null,
  op text check (op in ('upsert', 'delete')),
  hlc text collate "C",
  outcome text not null check (outcome in ('applied', 'partial', 'superseded', 'rejected')),
  code text,
  message text,
  fields_applied text[] not null default '{}',
  fields_superseded text[] not null default '{}',
  before jsonb not null default '{}',
  after jsonb not null default '{}',
  received_at timestamptz not null,
  applied_at timestamptz not null default now(),
  prev_hash text,
  hash text,
  xid xid8 not null default pg_current_xact_id(),
  -- Only a change that could not even be read lacks its report, op or hlc.
  check (outcome = 'rejected' or (report_id is not null and op is not null and hlc is not null))
);
-- A change applied twice is a no-op: its id is unique within its project
-- forever. change_id leads, so a lookup by change id can only use this index.
create unique index audit_change on audit_log (change_id, project_id);
-- Pull acks: one device's changes at or after a cursor, in (xid, seq) order.
create index audit_actor_pull on audit_log (actor_id, xid, seq);
-- History of one report, and the previous row of its hash chain.
create index audit_report on audit_log (project_id, report_id, seq);

create table conflicts (
  id uuid primary key default gen_random_uuid(),
  project_id uuid not null references projects (id),
  report_id uuid not null,
  field text not null,
  detected_at timestamptz not null default now(),
  winner_change_id uuid not null,
  winner_device_id text not null,
  winner_hlc text collate "C" not null,
  winner_value jsonb,
  loser_change_id uuid not null,
  loser_device_id text not null,
  loser_hlc text collate "C" not null,
  loser_value jsonb,
  xid xid8 not null default pg_current_xact_id()
);
-- The same pair of writes on the same field is one conflict, however often replayed.
create unique index conflicts_pair on conflicts (project_id, report_id, field, winner_change_id, loser_change_id);
create index conflicts_project on conflicts (project_id, detected_at desc);
-- Pull: conflicts a device took part in, at or after a cursor.
create index conflicts_winner_pull on conflicts (winner_device_id, xid, id);
create index conflicts_loser_pull on conflicts (loser_device_id, xid, id);
