-- Salted value digests (core/audit.ts, ValueSalts). An erasure keeps the
-- digest of each value it removes, so the chain still verifies; a digest of
-- the value alone let anyone who could read it find a value of a few likely
-- ones again (a diagnosis, a date of birth) by hashing each guess. A value
-- now enters the chain as the digest of a salt and itself: each row's salts
-- are derived from its secret `seed`, and an erasure replaces the seed with
-- the salts of the values it keeps (`salts`), so an erased value's salt is
-- gone with it. Rows from before this migration keep digests of the values
-- alone (seed null, salts empty) and verify as they did.
alter table audit_log
  add column seed text,
  add column salts jsonb not null default '{}';

-- An erasure may also drop a row's seed and write the salts of what it kept.
create or replace function audit_log_guard() returns trigger language plpgsql as $$
begin
  if tg_op = 'UPDATE' and current_setting('edge_sync.audit_erasure', true) = 'on'
     and (to_jsonb(new) - 'before' - 'after' - 'erased_digests' - 'signed_change' - 'seed' - 'salts')
       = (to_jsonb(old) - 'before' - 'after' - 'erased_digests' - 'signed_change' - 'seed' - 'salts')
     and (new.seed is null or new.seed = old.seed)
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
