-- The catch-up's index (hub.events_for, migration 4): a channel's events of
-- one tenant value ('' for none) in position order. Built CONCURRENTLY,
-- alone in its file (it cannot run in a transaction), so that writers are
-- never blocked while it builds on a large log.
CREATE INDEX CONCURRENTLY IF NOT EXISTS events_channel_client ON hub.events (channel, (coalesce(client, '')), xid, id);
