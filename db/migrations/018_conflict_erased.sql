-- Which side of a conflict an erasure emptied. An erased value is null, and
-- so is a value written as null: without this, a conflict whose values a
-- data-protection erasure removed read as two writes of null.
alter table conflicts
  add column winner_erased boolean not null default false,
  add column loser_erased boolean not null default false;

-- Conflicts erased before this migration: their erased fields are listed in
-- the report's `erased`, and an erasure left their values null.
update conflicts c
   set winner_erased = c.winner_value is null, loser_erased = c.loser_value is null
  from reports r
 where r.project_id = c.project_id and r.id = c.report_id and c.field = any(r.erased)
   and (c.winner_value is null or c.loser_value is null);
