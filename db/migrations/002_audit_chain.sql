-- The audit log's hash chain and its append-only guard.
--
-- Each row's hash covers the previous row of the same report (prev_hash) and
-- its own content, with field values entering only as digests
-- (before_digests, after_digests). A value can therefore be erased for a
-- data-protection request, through erase_audit_value() only, and the chain
-- still verifies from the stored digests.

alter table audit_log
  add column before_digests jsonb not null default '{}',
  add column after_digests jsonb not null default '{}';

create function audit_log_guard() returns trigger language plpgsql as $$
begin
  if tg_op = 'UPDATE' and current_setting('edge_sync.audit_erasure', true) = 'on'
     -- Erasure may only turn values into null: every other column, and the
     -- set of keys of before/after, stay exactly as they were.
     and (to_jsonb(new) - 'before' - 'after') = (to_jsonb(old) - 'before' - 'after')
     and array(select jsonb_object_keys(new.before) order by 1) = array(select jsonb_object_keys(old.before) order by 1)
     and array(select jsonb_object_keys(new.after) order by 1) = array(select jsonb_object_keys(old.after) order by 1)
     and not exists (select 1 from jsonb_each(new.before) n join jsonb_each(old.before) o using (key)
                      where n.value <> o.value and n.value <> 'null'::jsonb)
     and not exists (select 1 from jsonb_each(new.after) n join jsonb_each(old.after) o using (key)
                      where n.value <> o.value and n.value <> 'null'::jsonb)
  then
    return new;
  end if;
  raise exception 'audit_log is append-only: % refused', tg_op
    using errcode = 'insufficient_privilege',
          hint = 'Use erase_audit_value(seq, field) for a data-protection erasure.';
end
$$;

create trigger audit_log_append_only
  before update or delete on audit_log
  for each row execute function audit_log_guard();
create trigger audit_log_no_truncate
  before truncate on audit_log
  for each statement execute function audit_log_guard();

-- Erases one field's values (before and after) in one audit row; the digests
-- stay, so the chain still verifies. Returns whether the row had the field.
create function erase_audit_value(p_seq bigint, p_field text) returns boolean language plpgsql as $$
declare
  touched boolean;
begin
  perform set_config('edge_sync.audit_erasure', 'on', true);
  update audit_log
     set before = case when before ? p_field then jsonb_set(before, array[p_field], 'null') else before end,
         after = case when after ? p_field then jsonb_set(after, array[p_field], 'null') else after end
   where seq = p_seq and (before ? p_field or after ? p_field);
  touched := found;
  perform set_config('edge_sync.audit_erasure', 'off', true);
  return touched;
end
$$;
