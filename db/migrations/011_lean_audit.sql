-- The audit log carries only the indexes its reads need: each row written
-- pays for every one of them (bench/README.md, "What each part of the write
-- path costs").

-- Every row has a change id, unique within its project forever (exactly-once
-- apply already paid for that index): it is the primary key. The sequence
-- number orders the log; `audit_project_seq` serves reading it newest first
-- and finding one row by it.
alter table audit_log drop constraint audit_log_pkey;
alter table audit_log add constraint audit_change primary key using index audit_change;

-- A device's counters (GET /v1/devices) are counted in its pull range,
-- which carries the outcome, so they need no index of their own. A device's
-- id names one project, so the range holds only that project's rows.
drop index audit_actor_outcome;
drop index audit_actor_pull;
create index audit_actor_pull on audit_log (actor_id, xid, seq) include (outcome);
