-- An admin kick (DELETE /admin/connections/:id) marks the lease; the node
-- that owns the connection finds the mark on its next poll and closes it
-- with 1008 "closed by admin" (SPEC §3, §8). The database is the only bus
-- between nodes, so the kick cannot be handed to the owning node directly.
ALTER TABLE hub.leases ADD COLUMN kicked_at timestamptz;
