-- Erasure (DESIGN.md, "Erasure"): a data-protection request removes values
-- everywhere they are kept and keeps proof that they existed.

-- Each request, in the order devices receive them on pull.
create table erasures (
  id uuid primary key,
  project_id uuid not null references projects (id),
  report_id uuid not null,
  fields text[] not null,
  reason text not null,
  requested_by uuid not null,
  requested_at timestamptz not null default now(),
  xid xid8 not null default pg_current_xact_id()
);
create index erasures_pull on erasures (project_id, xid, id);

-- A device has erased locally once its pull cursor has passed the erasure
-- (the agent stores a page and its cursor in one transaction).
create table erasure_acks (
  erasure_id uuid not null references erasures (id),
  device_id uuid not null,
  acked_at timestamptz not null default now(),
  primary key (erasure_id, device_id)
);

-- The fields of a report whose values were erased (the clocks stay).
alter table reports add column erased text[] not null default '{}';

-- The erasure itself is an audit entry of the report's chain: op 'erase',
-- by the member who asked, the erased fields as fields_applied.
alter table audit_log drop constraint audit_log_op_check;
alter table audit_log add constraint audit_log_op_check check (op in ('upsert', 'delete', 'erase'));
alter table audit_log drop constraint audit_log_check;
alter table audit_log add constraint audit_log_check
  check (outcome = 'rejected' or (report_id is not null and op is not null and (hlc is not null or op = 'erase')));

-- Erasure may also null the values a device signed (signed_change.fields),
-- keeping their digests, like those of before and after.
create function audit_signed_fields(signed jsonb) returns jsonb language sql immutable as $$
  select case when jsonb_typeof(signed->'fields') = 'object' then signed->'fields' else '{}'::jsonb end
$$;
create or replace function audit_log_guard() returns trigger language plpgsql as $$
begin
  if tg_op = 'UPDATE' and current_setting('edge_sync.audit_erasure', true) = 'on'
     and (to_jsonb(new) - 'before' - 'after' - 'erased_digests' - 'signed_change')
       = (to_jsonb(old) - 'before' - 'after' - 'erased_digests' - 'signed_change')
     and array(select jsonb_object_keys(new.before) order by 1) = array(select jsonb_object_keys(old.before) order by 1)
     and array(select jsonb_object_keys(new.after) order by 1) = array(select jsonb_object_keys(old.after) order by 1)
     and not exists (select 1 from jsonb_each(new.before) n join jsonb_each(old.before) o using (key)
                      where n.value <> o.value and n.value <> 'null'::jsonb)
     and not exists (select 1 from jsonb_each(new.after) n join jsonb_each(old.after) o using (key)
                      where n.value <> o.value and n.value <> 'null'::jsonb)
     and (new.signed_change is null) = (old.signed_change is null)
     and coalesce(new.signed_change - 'fields', '{}') = coalesce(old.signed_change - 'fields', '{}')
     and array(select jsonb_object_keys(audit_signed_fields(new.signed_change)) order by 1)
       = array(select jsonb_object_keys(audit_signed_fields(old.signed_change)) order by 1)
     and not exists (select 1 from jsonb_each(audit_signed_fields(new.signed_change)) n
                       join jsonb_each(audit_signed_fields(old.signed_change)) o using (key)
                      where n.value <> o.value and n.value <> 'null'::jsonb)
     and new.erased_digests @> old.erased_digests
  then
    return new;
  end if;
  raise exception 'audit_log is append-only: % refused', tg_op
    using errcode = 'insufficient_privilege',
          hint = 'A data-protection erasure goes through eraseReport().';
end
$$;
