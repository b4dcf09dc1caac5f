-- The capture records the row raw, and the store turns it into its wire
-- form (SPEC §2.2) when it reads the event. Building the wire form in the
-- trigger (camelCase keys through the column map, timestamps to UTC under
-- a TimeZone of its own) was most of what the capture cost every writer
-- on every row: the trigger's time per row of an orders UPDATE fell from
-- about 125 µs to 50. A node converts each event once per read instead,
-- off the writers' path.
--
-- raw marks the rows written so: true, their payload and old hold column
-- names and the values as to_jsonb gives them in the writer's TimeZone.
-- NULL, the wire form already: rows from before this migration, or
-- written by hand. No default, so that only the capture writes raw rows.
ALTER TABLE hub.events ADD COLUMN raw boolean;

-- The capture of migration 7 without the conversion. old holds the
-- previous row's values that differ from the new row's, each looked up in
-- the new row (a binary search of one jsonb); with a diff by
-- jsonb_object_keys and two lookups the trigger took twice as long, with
-- one by EXCEPT of the two rows' jsonb_each 1.6 times. No TimeZone of its
-- own any more: the store reads the offsets. SECURITY DEFINER and the
-- search_path stay, since writers have no privilege on schema hub
-- (migration 4). TG_ARGV[3], the column map that migration 1's
-- hub.attach passed, is not read (hub.attach below passes none).
CREATE OR REPLACE FUNCTION hub.capture() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    chan    text := TG_ARGV[0];
    tenant  text := nullif(TG_ARGV[1], '');
    subj    text := nullif(TG_ARGV[2], '');
    cur     jsonb;
    changed jsonb; -- the previous values of the changed columns ("old" would shadow OLD)
    owner   text;
    ring    boolean; -- NULL when nothing was recorded
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
        SELECT jsonb_object_agg(p.key, p.value) INTO changed
        FROM jsonb_each(to_jsonb(OLD)) AS p
        WHERE p.value IS DISTINCT FROM cur -> p.key;
        IF changed IS NULL THEN
            RETURN NULL; -- a no-op UPDATE records nothing
        END IF;
    END IF;
    -- The attached guard and the doorbell of migration 7, in one statement.
    -- A writer not in READ COMMITTED reads the doorbell with its
    -- transaction's first snapshot, which may be older than the arm a
    -- reader waits on: such a writer always rings.
    INSERT INTO hub.events (channel, op, client, subject, payload, old, raw)
    SELECT chan, TG_OP, owner, cur ->> subj, cur, changed, true
    WHERE EXISTS (SELECT FROM hub.channels c WHERE c.channel = chan AND c.tbl = TG_RELID)
       OR EXISTS (SELECT FROM hub.channels c
                  WHERE c.channel = chan AND c.tbl IN (SELECT pg_partition_ancestors(TG_RELID)))
    RETURNING (SELECT coalesce(bool_or(d.armed), true) FROM hub.doorbell d)
              OR current_setting('transaction_isolation') <> 'read committed' INTO ring;
    IF ring THEN
        PERFORM pg_notify('hub_events', ''); -- identical notifications of one transaction fold into one
    END IF;
    RETURN NULL;
END
$$;

-- The reader's and the catch-up's pages of migration 4, with raw.
DROP FUNCTION hub.events_after(xid8, bigint, integer);
CREATE FUNCTION hub.events_after(after_xid xid8, after_id bigint, max_rows integer)
RETURNS TABLE (xid xid8, id bigint, channel text, op text, client text, subject text,
               payload jsonb, old jsonb, created_at timestamptz, scope text, raw boolean)
LANGUAGE sql STABLE
SET enable_seqscan = off SET enable_sort = off SET enable_bitmapscan = off AS $$
    SELECT e.xid, e.id, e.channel, e.op, e.client, e.subject, e.payload, e.old, e.created_at,
           hub.scope(e.channel), e.raw
    FROM hub.events e
    WHERE (e.xid, e.id) > (after_xid, after_id)
      AND e.xid < pg_snapshot_xmin(pg_current_snapshot())
    ORDER BY e.xid, e.id
    LIMIT max_rows
$$;

DROP FUNCTION hub.events_for(xid8, bigint, text, text[], integer, bigint);
CREATE FUNCTION hub.events_for(after_xid xid8, after_id bigint, sub_client text, sub_channels text[],
                               max_rows integer, max_bytes bigint)
RETURNS TABLE (xid xid8, id bigint, channel text, op text, client text, subject text,
               payload jsonb, old jsonb, created_at timestamptz, scope text, raw boolean,
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
                            NULL::jsonb, NULL::jsonb, NULL::timestamptz, NULL::text, NULL::boolean, NULL::xid8, true;
        RETURN;
    END IF;
    FOR ch IN SELECT c.channel, c.tenant_column IS NOT NULL AS tenant FROM hub.channels c
              WHERE sub_channels IS NULL OR c.channel = ANY (sub_channels) LOOP
        -- A tenant channel's rows of this client; a global channel's rows
        -- without a client, and any of its rows that name this client.
        IF sub_client <> '' THEN
            branches := branches || format(
                '(SELECT e.xid, e.id, e.channel, e.op, e.client, e.subject, e.payload, e.old, e.created_at, %L::text AS scope, e.raw
                 FROM hub.events e WHERE e.channel = %L AND coalesce(e.client, '''') = %L
                 AND (e.xid, e.id) > ($1, $2) AND e.xid < $3 ORDER BY e.xid, e.id LIMIT $4)',
                CASE WHEN ch.tenant THEN 'tenant' ELSE 'global' END, ch.channel, sub_client);
        END IF;
        IF NOT ch.tenant THEN
            branches := branches || format(
                '(SELECT e.xid, e.id, e.channel, e.op, e.client, e.subject, e.payload, e.old, e.created_at, ''global''::text AS scope, e.raw
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
            scope := e.scope; raw := e.raw; watermark := NULL; trimmed := NULL;
            RETURN NEXT;
            n := n + 1;
            -- About the size on the wire, not pg_column_size's: a
            -- compressed row is sent whole (a raw row's keys and offsets
            -- are a few bytes longer than the wire form's).
            bytes := bytes + octet_length(e.payload::text) + coalesce(octet_length(e.old::text), 0);
            IF n >= max_rows OR bytes >= max_bytes THEN
                RETURN QUERY SELECT NULL::xid8, NULL::bigint, NULL::text, NULL::text, NULL::text, NULL::text,
                                    NULL::jsonb, NULL::jsonb, NULL::timestamptz, NULL::text, NULL::boolean, NULL::xid8, false;
                RETURN;
            END IF;
        END LOOP;
    END IF;
    RETURN QUERY SELECT NULL::xid8, NULL::bigint, NULL::text, NULL::text, NULL::text, NULL::text,
                        NULL::jsonb, NULL::jsonb, NULL::timestamptz, NULL::text, NULL::boolean, wm, false;
END
$$;

-- hub.attach of migration 1, with UPDATE captured by a trigger of its own
-- whose WHEN skips the rows an UPDATE left identical: a no-op UPDATE
-- records nothing anyway, and it no longer pays for the call, the
-- conversions to jsonb and the diff (about half the throughput of no-op
-- UPDATEs). WHEN compares the rows' images (*<>): IS DISTINCT FROM would
-- look up each column type's equality, which json, point and xml lack,
-- and fail the writer's UPDATE. Values equal but written differently
-- (1.0 and 1.00) still fire it, and the capture's jsonb diff finds them
-- unchanged. A table's INSERT and DELETE, or its UPDATE alone, are
-- captured by hub_capture; its UPDATE along with them by
-- hub_capture_update. The triggers take no column map any more.
CREATE OR REPLACE FUNCTION hub.attach(tbl regclass, channel text, tenant_column text, subject_column text, ops text[])
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    col     text;
    args    text := format('%L, %L, %L', attach.channel, coalesce(tenant_column, ''), coalesce(subject_column, ''));
    row_ops text[] := ARRAY(SELECT DISTINCT o FROM unnest(ops) AS o WHERE o <> 'UPDATE' ORDER BY 1);
    upd     text := 'CREATE TRIGGER %I AFTER UPDATE ON %s FOR EACH ROW WHEN (OLD.* OPERATOR(pg_catalog.*<>) NEW.*) '
                    'EXECUTE FUNCTION hub.capture(%s)';
BEGIN
    IF ops IS NULL OR cardinality(ops) = 0 OR NOT ops <@ ARRAY['INSERT', 'UPDATE', 'DELETE'] THEN
        RAISE EXCEPTION 'hub.attach: ops must be a non-empty subset of {INSERT,UPDATE,DELETE}, got %', ops;
    END IF;
    FOREACH col IN ARRAY ARRAY[tenant_column, subject_column] LOOP
        IF col IS NOT NULL AND NOT EXISTS (
            SELECT 1 FROM pg_attribute WHERE attrelid = tbl AND attname = col AND attnum > 0 AND NOT attisdropped) THEN
            RAISE EXCEPTION 'hub.attach: table % has no column %', tbl, col;
        END IF;
    END LOOP;
    IF EXISTS (SELECT 1 FROM hub.channels c WHERE c.channel = attach.channel AND c.tbl <> attach.tbl) THEN
        RAISE EXCEPTION 'hub.attach: channel % already broadcasts another table; detach that one first', channel;
    END IF;
    PERFORM hub.detach(tbl);
    INSERT INTO hub.channels (channel, tbl, tenant_column, subject_column, ops)
    VALUES (attach.channel, tbl, tenant_column, subject_column,
            ARRAY(SELECT DISTINCT unnest(ops) ORDER BY 1));
    IF cardinality(row_ops) > 0 THEN
        EXECUTE format('CREATE TRIGGER hub_capture AFTER %s ON %s FOR EACH ROW EXECUTE FUNCTION hub.capture(%s)',
                       array_to_string(row_ops, ' OR '), tbl, args);
    END IF;
    IF 'UPDATE' = ANY (ops) THEN
        EXECUTE format(upd, CASE WHEN cardinality(row_ops) > 0 THEN 'hub_capture_update' ELSE 'hub_capture' END, tbl, args);
    END IF;
    PERFORM pg_notify('hub_channels', '');
END
$$;

CREATE OR REPLACE FUNCTION hub.detach(tbl regclass) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('DROP TRIGGER IF EXISTS hub_capture ON %s', tbl);
    EXECUTE format('DROP TRIGGER IF EXISTS hub_capture_update ON %s', tbl);
    DELETE FROM hub.channels c WHERE c.tbl = detach.tbl;
    PERFORM pg_notify('hub_channels', '');
END
$$;

-- Every attached table gets its new triggers.
DO $$
DECLARE
    c record;
BEGIN
    FOR c IN SELECT * FROM hub.channels ORDER BY channel LOOP
        PERFORM hub.attach(c.tbl, c.channel, c.tenant_column, c.subject_column, c.ops);
    END LOOP;
END
$$;
