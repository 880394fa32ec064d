-- The head of a stored report's audit chain lives in the report's own row,
-- which every change to the report reads and writes anyway: one row and one
-- index probe fewer per change, and at a million reports two pages fewer
-- that are rarely in memory (bench/README.md, "scale").
--
-- audit_chains keeps the chains whose report is not stored: changes refused
-- before their report ever existed (and the nil-UUID chain of changes whose
-- report could not be read). When such a report is created, its row takes
-- the head and the chain's row is left at the head it had then, never
-- written again: a consumer that read the report as not stored finds that
-- row moved on and applies its batch again (functions/app/apply/write.ts).
-- The same holds for a report that consumers from before this migration
-- store while a deployment runs (its row has no head, audit_chains has it).
alter table reports add column chain_head text;
update reports r set chain_head = h.head
  from audit_chains h
 where h.project_id = r.project_id and h.report_id = r.id;
delete from audit_chains h using reports r where h.project_id = r.project_id and h.report_id = r.id;

-- A chain has one first entry. Two consumers that each read a report and its
-- chain as absent, one creating the report (head in its row) and one
-- refusing a change to it (head in audit_chains), touch no row in common:
-- this index is where they meet, and the second one's batch is applied
-- again. One entry per chain, not per change.
create unique index audit_chain_start on audit_log (project_id, report_id) where prev_hash is null;
