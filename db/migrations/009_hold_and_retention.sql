-- Legal hold on a report (blocks erasure and retention) and a project's
-- retention of deleted reports (DESIGN.md, "Erasure").
alter table reports
  add column hold_reason text,
  add column held_by uuid,
  add column held_at timestamptz;

-- Deleted reports' values are erased this many days after their deletion;
-- null keeps them.
alter table projects add column retain_deleted_days integer
  check (retain_deleted_days is null or retain_deleted_days >= 0);
