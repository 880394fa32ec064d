-- The search column without a SQL function. report_search_text ran the
-- executor once for every row written (a function with a subquery is never
-- inlined), a tenth of the database's time on every edit. The column is now
-- one expression: the report's string field values as a JSON array, as
-- text, lowercased. A jsonpath in strict mode takes the top-level string
-- values only, as before (lax mode would unwrap arrays).
--
-- The text is JSON, so it holds escapes and the array's own brackets,
-- quotes and commas: `q` finds its candidates here through the trigram
-- index (q JSON-escaped the same way, so every report that matches is
-- among them) and checks each candidate's values themselves
-- (functions/app/read.ts).
--
-- PostgreSQL 15 cannot change a generated column's expression in place:
-- the column is added again, which rewrites the table once.
alter table reports drop column search;
alter table reports add column search text generated always as
  (lower(jsonb_path_query_array(fields, 'strict $.* ? (@.type() == "string")')::text)) stored;
create index reports_search on reports using gin (search gin_trgm_ops);
drop function report_search_text(jsonb);
