-- The apply path's lookups, shaped so that each can be served by one index
-- only: the load statement's plan is then the same on an empty, never
-- analysed database as on one with millions of rows.

-- The head of each audit hash chain (the hash of its last row), one row per
-- (project, report). The load statement reads and locks it by its primary
-- key, where it used to find the newest audit row of the report, a lookup
-- that two indexes could serve and that a plan on empty-table statistics
-- served by scanning the project's whole log. The row lock also keeps a
-- chain from forking: two consumers appending to one chain take turns, and
-- two starting a new chain collide on the primary key (the loser's batch is
-- retried). That was the job of the unique index on (project_id, report_id,
-- prev_hash), which every audit insert paid for and which is dropped here.
create table audit_chains (
  project_id uuid not null,
  report_id uuid not null,
  head text not null,
  primary key (project_id, report_id)
);
insert into audit_chains (project_id, report_id, head)
  select distinct on (project_id, report_id) project_id, report_id, hash
    from audit_log
   where report_id is not null and hash is not null
   order by project_id, report_id, seq desc;
drop index audit_chain;

-- Reports are locked by id first: with the project test written so that no
-- index can use it, the primary key is the only index that fits the lookup
-- (the listing, pull and date indexes all lead with project_id).
alter table reports drop constraint reports_pkey;
alter table reports add constraint reports_pkey primary key (id, project_id);
