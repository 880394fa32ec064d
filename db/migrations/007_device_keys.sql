-- Device-signed changes (DESIGN.md, "Chain of custody").
--
-- A device registers its public key once (POST /v1/devices/me/key); from
-- then on ingest refuses any change of it that does not carry its signature.
alter table devices add column public_key jsonb, add column key_registered_at timestamptz;

-- The audit row keeps what the device signed: its signature, and the parts of
-- the change the signature covers that the row does not already hold (every
-- field value the change carried, superseded ones too, its base and scope).
-- Null for changes of devices without a key: those rows are unsigned.
alter table audit_log add column sig text, add column signed_change jsonb;
