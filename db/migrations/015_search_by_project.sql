-- `q` is always asked within one project, and the trigram index alone knew
-- nothing of projects: a project's `q` read the candidates of every other
-- project's reports, and a database without statistics ANDed in a bitmap
-- of the whole project from a btree (100,000 entries read for a project of
-- 100,000 reports, a quarter of a `q`'s time), or read the project's rows
-- from that btree alone and tested each.
--
-- One GIN index now serves the project and the text at once. The project is
-- indexed as a one-element array (`array[project_id] @> array[$1]`), a
-- condition no btree serves, so the rows matching a `q` are found through
-- this index whatever the statistics say (functions/app/read.ts). Each
-- report written adds one entry for its project beside its trigrams.
--
-- The index is built inside the migration's transaction: writes to reports
-- wait meanwhile (8.5 s at 1,000,000 reports with the default
-- maintenance_work_mem). A consumer whose write waits past its lock_timeout
-- fails the batch, which SQS delivers again.
drop index reports_search;
create index reports_search on reports using gin ((array[project_id]), search gin_trgm_ops);
