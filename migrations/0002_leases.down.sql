ALTER TABLE hub.leases DROP COLUMN IF EXISTS kicked_at;
