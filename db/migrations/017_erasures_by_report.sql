-- A report's erasures, found by the report: the apply path reads them for a
-- report with erased fields (a change written before an erasure and applied
-- after it has those fields' values erased too), and retention looks for a
-- report's own retention erasure. Both read the whole table without it.
create index erasures_report on erasures (report_id, project_id);
