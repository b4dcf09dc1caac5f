-- Removes everything 0001 created except schema hub itself, which holds
-- golang-migrate's version table.
DROP TABLE IF EXISTS public.orders, public.bets, public.accounts, public.scores, public.emergency;
DROP FUNCTION IF EXISTS hub.events_after(xid8, bigint, integer);
DROP FUNCTION IF EXISTS hub.attach(regclass, text, text, text, text[]);
DROP FUNCTION IF EXISTS hub.detach(regclass);
DROP FUNCTION IF EXISTS hub.capture();
DROP FUNCTION IF EXISTS hub.wire_value(jsonb, jsonb);
DROP FUNCTION IF EXISTS hub.column_entry(oid, text);
DROP FUNCTION IF EXISTS hub.column_map(regclass);
DROP FUNCTION IF EXISTS hub.utc_ts(jsonb);
DROP FUNCTION IF EXISTS hub.utc_tz(jsonb);
DROP FUNCTION IF EXISTS hub.camel(text);
DROP TABLE IF EXISTS hub.channels, hub.horizon, hub.events, hub.leases, hub.nodes, hub.api_keys, hub.clients;
