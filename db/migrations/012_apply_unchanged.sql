-- A batch is applied without locks when it can be (functions/app/apply):
-- its rows are read in one statement and written in another, and the write
-- checks that nothing it read has changed since. This raises, undoing the
-- write, when something has; the batch is then applied again under locks.
create function apply_unchanged(unchanged boolean) returns boolean
  language plpgsql
as $$
begin
  if not unchanged then
    raise exception 'a report or audit chain this batch read has changed since'
      using errcode = '40001';
  end if;
  return true;
end
$$;
