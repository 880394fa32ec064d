-- The read API: search, listings and the dashboard's counters.

create extension if not exists pg_trgm;

-- The report's string field values, lowercased, one per line: what `q`
-- searches. A function so the generated column can use a subquery; it only
-- reads its argument, so it is immutable.
create function report_search_text(fields jsonb) returns text
  language sql immutable parallel safe
  return (select lower(coalesce(string_agg(value, E'\n' order by key), ''))
            from jsonb_each_text(fields)
           where jsonb_typeof(fields -> key) = 'string');

alter table reports add column search text generated always as (report_search_text(fields)) stored;

-- GET /v1/reports?q=: case-insensitive substring, served by trigrams (LIKE '%…%').
create index reports_search on reports using gin (search gin_trgm_ops);
-- GET /v1/reports: newest first, keyset on (created_at, id), which never
-- change, so a walk through the pages sees every report once even while
-- reports are edited.
create index reports_listing on reports (project_id, created_at desc, id desc);
-- GET /v1/reports?updatedAfter=&updatedBefore=
create index reports_updated on reports (project_id, updated_at);
-- GET /v1/devices counters (index-only counts per device and outcome).
create index audit_actor_outcome on audit_log (project_id, actor_id, outcome);
-- GET /v1/audit (newest first) and GET /v1/status (last applied).
create index audit_project_seq on audit_log (project_id, seq desc);
-- GET /v1/conflicts: newest first per project, optionally per report.
create index conflicts_listing on conflicts (project_id, detected_at desc, id desc);
create index conflicts_report on conflicts (project_id, report_id, detected_at desc);

-- What the devices view shows beside the audit counts.
alter table devices add column accepted bigint not null default 0;
