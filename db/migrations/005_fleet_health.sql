-- Fleet health: what the centre needs to see a device in trouble
-- (CONTRACT.md GET /v1/devices, DESIGN.md "Failure semantics").

alter table devices
  -- Its last request was refused (4xx): it will not get through by retrying.
  add column last_request_refused boolean not null default false,
  -- Pushes in a row that were refused or left changes unqueued.
  add column failed_pushes integer not null default 0,
  -- Its last refused or failed request.
  add column last_error_at timestamptz,
  add column last_error_code text,
  add column last_error_message text,
  -- From the agent's User-Agent on its last request.
  add column agent_version text,
  add column platform text;
