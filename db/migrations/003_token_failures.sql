-- Failed token requests per existing client, for the token route's limit:
-- a client id that keeps failing is refused with 429 for a while. Only ids
-- that exist are counted, so random ids cannot grow this table.
create table token_failures (
  client_id text primary key,
  failures integer not null,
  window_start timestamptz not null
);
