-- Positions follow commits (SPEC §2.2, §2.3). An event's xid is its causal
-- clock: the larger of the writer's transaction id and the xmax of the
-- snapshot of the statement that inserts it. Evaluated as the column's
-- default, it is taken by that statement, after any row-lock wait of the
-- UPDATE that fired the trigger (a plpgsql statement takes a fresh snapshot
-- in READ COMMITTED). Old rows keep their own transaction id: a clock is
-- never smaller than it, so the old and the new positions form one order
-- and old positions stay valid resume points (README, "Ordering").
ALTER TABLE hub.events
    ALTER COLUMN xid SET DEFAULT greatest(pg_current_xact_id(), pg_snapshot_xmax(pg_current_snapshot()));

-- Who may see an event, from hub.channels at read time, not from the log
-- row (SPEC §2.2): 'tenant' (only the row's client; a row without one, no
-- one), 'global' (every subscriber), NULL (not attached: no one).
CREATE FUNCTION hub.scope(chan text) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN c.tenant_column IS NULL THEN 'global' ELSE 'tenant' END
    FROM hub.channels c WHERE c.channel = chan
$$;

-- The reader's page, now with each event's scope.
DROP FUNCTION hub.events_after(xid8, bigint, integer);
CREATE FUNCTION hub.events_after(after_xid xid8, after_id bigint, max_rows integer)
RETURNS TABLE (xid xid8, id bigint, channel text, op text, client text, subject text,
               payload jsonb, old jsonb, created_at timestamptz, scope text)
LANGUAGE sql STABLE
SET enable_seqscan = off SET enable_sort = off SET enable_bitmapscan = off AS $$
    SELECT e.xid, e.id, e.channel, e.op, e.client, e.subject, e.payload, e.old, e.created_at,
           hub.scope(e.channel)
    FROM hub.events e
    WHERE (e.xid, e.id) > (after_xid, after_id)
      AND e.xid < pg_snapshot_xmin(pg_current_snapshot())
    ORDER BY e.xid, e.id
    LIMIT max_rows
$$;

-- A session's catch-up page (issue 12 §5): only the events it may see, on
-- its channels (NULL: every attached channel, as of this read), up to
-- max_rows events or max_bytes of payload, in position order. Each
-- channel and tenant value is read on its own, at most max_rows of it, by
-- the index events_channel_client (migration 5) or in the log's order,
-- whichever the planner finds cheaper for it; the pieces are then sorted
-- together. A quiet client resuming behind millions of other clients'
-- events reads only its own, and a page reads at most max_rows events per
-- channel. (PostgreSQL 15 plans a UNION ALL under ORDER BY as an Append
-- and a Sort, not as a merge of ordered scans, hence the limit on each
-- piece; sorts stay enabled, or a rare piece would walk the whole log to
-- avoid sorting its few rows.) STABLE: every query here sees the calling
-- statement's snapshot, so the watermark, the channels, the page and the
-- horizon agree.
--
-- The last row is a marker (op NULL): watermark is the read's watermark
-- when the page holds every matching event below it (the scan reached it),
-- NULL when the page was cut by max_rows or max_bytes (the scan reached the
-- page's last event); trimmed says that retention deleted events after the
-- start before they could be read, and the page is then empty.
CREATE FUNCTION hub.events_for(after_xid xid8, after_id bigint, sub_client text, sub_channels text[],
                               max_rows integer, max_bytes bigint)
RETURNS TABLE (xid xid8, id bigint, channel text, op text, client text, subject text,
               payload jsonb, old jsonb, created_at timestamptz, scope text,
               watermark xid8, trimmed boolean)
LANGUAGE plpgsql STABLE
SET enable_seqscan = off AS $$
#variable_conflict use_column
DECLARE
    wm       xid8 := pg_snapshot_xmin(pg_current_snapshot());
    branches text[] := '{}';
    ch       record;
    e        record;
    n        integer := 0;
    bytes    bigint := 0;
BEGIN
    IF EXISTS (SELECT 1 FROM hub.horizon h WHERE (h.xid, h.id) > (after_xid, after_id)) THEN
        RETURN QUERY SELECT NULL::xid8, NULL::bigint, NULL::text, NULL::text, NULL::text, NULL::text,
                            NULL::jsonb, NULL::jsonb, NULL::timestamptz, NULL::text, NULL::xid8, true;
        RETURN;
    END IF;
    FOR ch IN SELECT c.channel, c.tenant_column IS NOT NULL AS tenant FROM hub.channels c
              WHERE sub_channels IS NULL OR c.channel = ANY (sub_channels) LOOP
        -- A tenant channel's rows of this client; a global channel's rows
        -- without a client, and any of its rows that name this client.
        IF sub_client <> '' THEN
            branches := branches || format(
                '(SELECT e.xid, e.id, e.channel, e.op, e.client, e.subject, e.payload, e.old, e.created_at, %L::text AS scope
                 FROM hub.events e WHERE e.channel = %L AND coalesce(e.client, '''') = %L
                 AND (e.xid, e.id) > ($1, $2) AND e.xid < $3 ORDER BY e.xid, e.id LIMIT $4)',
                CASE WHEN ch.tenant THEN 'tenant' ELSE 'global' END, ch.channel, sub_client);
        END IF;
        IF NOT ch.tenant THEN
            branches := branches || format(
                '(SELECT e.xid, e.id, e.channel, e.op, e.client, e.subject, e.payload, e.old, e.created_at, ''global''::text AS scope
                 FROM hub.events e WHERE e.channel = %L AND coalesce(e.client, '''') = ''''
                 AND (e.xid, e.id) > ($1, $2) AND e.xid < $3 ORDER BY e.xid, e.id LIMIT $4)',
                ch.channel);
        END IF;
    END LOOP;
    IF cardinality(branches) > 0 THEN
        FOR e IN EXECUTE 'SELECT * FROM (' || array_to_string(branches, ' UNION ALL ') || ') u ORDER BY u.xid, u.id LIMIT $4'
                 USING after_xid, after_id, wm, max_rows LOOP
            xid := e.xid; id := e.id; channel := e.channel; op := e.op; client := e.client;
            subject := e.subject; payload := e.payload; old := e.old; created_at := e.created_at;
            scope := e.scope; watermark := NULL; trimmed := NULL;
            RETURN NEXT;
            n := n + 1;
            -- The size on the wire, not pg_column_size's: a compressed
            -- row is sent whole.
            bytes := bytes + octet_length(e.payload::text) + coalesce(octet_length(e.old::text), 0);
            IF n >= max_rows OR bytes >= max_bytes THEN
                RETURN QUERY SELECT NULL::xid8, NULL::bigint, NULL::text, NULL::text, NULL::text, NULL::text,
                                    NULL::jsonb, NULL::jsonb, NULL::timestamptz, NULL::text, NULL::xid8, false;
                RETURN;
            END IF;
        END LOOP;
    END IF;
    RETURN QUERY SELECT NULL::xid8, NULL::bigint, NULL::text, NULL::text, NULL::text, NULL::text,
                        NULL::jsonb, NULL::jsonb, NULL::timestamptz, NULL::text, wm, false;
END
$$;

-- The capture trigger (SPEC §2.2), changed in three ways: a tenant value
-- that is NULL or '' records nothing (such a row is for no one); it runs
-- as its owner, so writers need no privilege on schema hub (SECURITY
-- DEFINER, with a search_path that writers cannot redirect); and the
-- event's clock comes from hub.events' default.
CREATE OR REPLACE FUNCTION hub.capture() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET TimeZone = 'UTC' AS $$
DECLARE
    chan    text := TG_ARGV[0];
    tenant  text := nullif(TG_ARGV[1], '');
    subj    text := nullif(TG_ARGV[2], '');
    cols    jsonb := TG_ARGV[3]::jsonb;
    cur     jsonb;
    prev    jsonb;
    payload jsonb;
    changed jsonb; -- the previous values of the changed columns ("old" would shadow OLD)
    owner   text;
BEGIN
    IF TG_OP = 'DELETE' THEN
        cur := to_jsonb(OLD);
    ELSE
        cur := to_jsonb(NEW);
    END IF;
    IF tenant IS NOT NULL THEN
        owner := nullif(cur ->> tenant, '');
        IF owner IS NULL THEN
            RETURN NULL; -- a tenant row without a tenant is for no one (SPEC §2.2)
        END IF;
    END IF;
    IF TG_OP = 'UPDATE' THEN
        prev := to_jsonb(OLD);
        SELECT jsonb_object_agg(m.entry ->> 0, hub.wire_value(n.value, m.entry)),
               jsonb_object_agg(m.entry ->> 0, hub.wire_value(prev -> n.key, m.entry))
                   FILTER (WHERE n.value IS DISTINCT FROM prev -> n.key)
        INTO payload, changed
        FROM jsonb_each(cur) AS n,
             LATERAL (SELECT coalesce(cols -> n.key, hub.column_entry(TG_RELID, n.key)) AS entry) AS m;
        IF changed IS NULL THEN
            RETURN NULL; -- a no-op UPDATE records nothing
        END IF;
    ELSE
        SELECT jsonb_object_agg(m.entry ->> 0, hub.wire_value(n.value, m.entry))
        INTO payload
        FROM jsonb_each(cur) AS n,
             LATERAL (SELECT coalesce(cols -> n.key, hub.column_entry(TG_RELID, n.key)) AS entry) AS m;
    END IF;
    INSERT INTO hub.events (channel, op, client, subject, payload, old)
    VALUES (chan, TG_OP, owner, cur ->> subj, coalesce(payload, '{}'), changed);
    PERFORM pg_notify('hub_events', ''); -- identical notifications of one transaction fold into one
    RETURN NULL;
END
$$;

-- Only the owner (hub.attach) may create triggers on the capture: as a
-- SECURITY DEFINER function it must not be attachable by other roles to
-- tables of their own, which would let them write events as its owner.
REVOKE EXECUTE ON FUNCTION hub.capture() FROM PUBLIC;
