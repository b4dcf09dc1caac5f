DROP INDEX CONCURRENTLY IF EXISTS hub.events_channel_client;
