-- The audit log's hash chain and its append-only guard.
--
-- Each row's hash covers the previous row of the same report (prev_hash) and
-- its own content, with field values entering only as their digests. A value
-- can therefore be erased for a data-protection request: its digest moves to
-- erased_digests (keys "before:<field>" / "after:<field>"), the value becomes
-- null, and the chain still verifies.

alter table audit_log add column erased_digests jsonb not null default '{}';

-- A chain never forks: no two rows of one report name the same predecessor
-- (nor are two of them first). Two consumers racing on one report cannot
-- both append; the loser's batch fails and is retried in order.
create unique index audit_chain on audit_log (project_id, report_id, prev_hash) nulls not distinct;

create function audit_log_guard() returns trigger language plpgsql as $$
begin
  if tg_op = 'UPDATE' and current_setting('edge_sync.audit_erasure', true) = 'on'
     -- Erasure may only turn values into null and record their digests: every
     -- other column, and the keys of before/after, stay exactly as they were.
     and (to_jsonb(new) - 'before' - 'after' - 'erased_digests')
       = (to_jsonb(old) - 'before' - 'after' - 'erased_digests')
     and array(select jsonb_object_keys(new.before) order by 1) = array(select jsonb_object_keys(old.before) order by 1)
     and array(select jsonb_object_keys(new.after) order by 1) = array(select jsonb_object_keys(old.after) order by 1)
     and not exists (select 1 from jsonb_each(new.before) n join jsonb_each(old.before) o using (key)
                      where n.value <> o.value and n.value <> 'null'::jsonb)
     and not exists (select 1 from jsonb_each(new.after) n join jsonb_each(old.after) o using (key)
                      where n.value <> o.value and n.value <> 'null'::jsonb)
     and new.erased_digests @> old.erased_digests
  then
    return new;
  end if;
  raise exception 'audit_log is append-only: % refused', tg_op
    using errcode = 'insufficient_privilege',
          hint = 'A data-protection erasure goes through eraseAuditValue().';
end
$$;

create trigger audit_log_append_only
  before update or delete on audit_log
  for each row execute function audit_log_guard();
create trigger audit_log_no_truncate
  before truncate on audit_log
  for each statement execute function audit_log_guard();
