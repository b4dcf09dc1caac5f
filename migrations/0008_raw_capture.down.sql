-- Back to migration 7, whose readers take hub.events as the wire form:
-- the rows recorded raw are converted first, as migration 7's capture
-- would have written them, by the channel's table as it is now (a column
-- dropped since keeps its values, under hub.camel's key).

-- What becomes of a column's values: 'tz' and 'ts' for timestamptz and
-- timestamp, 'tzn' for a domain or an array over timestamptz (the store's
-- columnsSQL).
CREATE FUNCTION hub.raw_kind(rel regclass, col text) RETURNS text
LANGUAGE sql STABLE AS $$
    WITH RECURSIVE base (top, typ) AS (
        SELECT a.atttypid, a.atttypid FROM pg_attribute a
        WHERE a.attrelid = rel AND a.attname = col AND a.attnum > 0 AND NOT a.attisdropped
      UNION ALL
        SELECT b.top, CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.typelem END
        FROM base b JOIN pg_type t ON t.oid = b.typ
        WHERE t.typtype = 'd' OR (t.typcategory = 'A' AND t.typelem <> 0)
    )
    SELECT CASE WHEN top = 'timestamptz'::regtype::oid THEN 'tz'
                WHEN top = 'timestamp'::regtype::oid THEN 'ts'
                WHEN bool_or(typ = 'timestamptz'::regtype::oid) THEN 'tzn' END
    FROM base GROUP BY top
$$;

-- A value with each timestamptz in it, at any depth of arrays, as
-- to_jsonb writes it in the caller's TimeZone. plpgsql, since a SQL
-- function cannot call itself.
CREATE FUNCTION hub.raw_utc(v jsonb) RETURNS jsonb
LANGUAGE plpgsql STABLE AS $$
BEGIN
    CASE jsonb_typeof(v)
    WHEN 'string' THEN
        IF v #>> '{}' ~ '^\d{4,}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?[+-]\d\d:\d\d(:\d\d)?( BC)?$' THEN
            RETURN to_jsonb((v #>> '{}')::timestamptz);
        END IF;
    WHEN 'array' THEN
        RETURN (SELECT coalesce(jsonb_agg(hub.raw_utc(x) ORDER BY i), '[]')
                FROM jsonb_array_elements(v) WITH ORDINALITY AS a(x, i));
    ELSE NULL;
    END CASE;
    RETURN v;
END
$$;

-- A raw row in migration 7's wire form.
CREATE FUNCTION hub.raw_to_wire(chan text, r jsonb) RETURNS jsonb
LANGUAGE sql STABLE SET TimeZone = 'UTC' AS $$
    SELECT coalesce(jsonb_object_agg(hub.camel(n.key), CASE k.kind
               WHEN 'tz' THEN hub.utc_tz(hub.raw_utc(n.value))
               WHEN 'ts' THEN hub.utc_ts(n.value)
               WHEN 'tzn' THEN hub.raw_utc(n.value)
               ELSE n.value END), '{}')
    FROM jsonb_each(r) AS n
    LEFT JOIN LATERAL (SELECT hub.raw_kind(c.tbl, n.key) AS kind FROM hub.channels c WHERE c.channel = chan) AS k ON true
$$;

UPDATE hub.events
SET payload = hub.raw_to_wire(channel, payload),
    old = CASE WHEN old IS NOT NULL THEN hub.raw_to_wire(channel, old) END
WHERE raw;

DROP FUNCTION hub.raw_to_wire(text, jsonb);
DROP FUNCTION hub.raw_utc(jsonb);
DROP FUNCTION hub.raw_kind(regclass, text);

-- Migration 7's capture.
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
    -- One statement records the event only while its table (or, for a
    -- partition, the partitioned table whose trigger it inherited) is
    -- attached under this channel (migration 6; the partitions are looked
    -- up only when the table itself is not), and reads the doorbell
    -- (SPEC §2.2): a statement costs more than the lookups it holds. Its
    -- snapshot is taken after the row change that fired the trigger gave
    -- the transaction its id, so a reader that armed after this read is
    -- waiting for that id to finish.
    INSERT INTO hub.events (channel, op, client, subject, payload, old)
    SELECT chan, TG_OP, owner, cur ->> subj, coalesce(payload, '{}'), changed
    WHERE EXISTS (SELECT FROM hub.channels c WHERE c.channel = chan AND c.tbl = TG_RELID)
       OR EXISTS (SELECT FROM hub.channels c
                  WHERE c.channel = chan AND c.tbl IN (SELECT pg_partition_ancestors(TG_RELID)))
    RETURNING (SELECT coalesce(bool_or(d.armed), true) FROM hub.doorbell d) INTO ring;
    IF ring THEN
        PERFORM pg_notify('hub_events', ''); -- identical notifications of one transaction fold into one
    END IF;
    RETURN NULL;
END
$$;

-- Migration 4's pages, without raw.
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

DROP FUNCTION hub.events_for(xid8, bigint, text, text[], integer, bigint);
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
                        NULL::jsonb, NULL::jsonb, NULL::timestamptz, NULL::text, NULL::xid8, false;
END
$$;

ALTER TABLE hub.events DROP COLUMN raw;

-- Migration 1's hub.attach and hub.detach: one trigger per table, given
-- the column map.
CREATE OR REPLACE FUNCTION hub.attach(tbl regclass, channel text, tenant_column text, subject_column text, ops text[])
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    col text;
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
    EXECUTE format('CREATE TRIGGER hub_capture AFTER %s ON %s FOR EACH ROW EXECUTE FUNCTION hub.capture(%L, %L, %L, %L)',
                   array_to_string(ARRAY(SELECT DISTINCT unnest(ops)), ' OR '), tbl,
                   attach.channel, coalesce(tenant_column, ''), coalesce(subject_column, ''),
                   hub.column_map(tbl));
    PERFORM pg_notify('hub_channels', '');
END
$$;

CREATE OR REPLACE FUNCTION hub.detach(tbl regclass) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('DROP TRIGGER IF EXISTS hub_capture ON %s', tbl);
    DELETE FROM hub.channels c WHERE c.tbl = detach.tbl;
    PERFORM pg_notify('hub_channels', '');
END
$$;

DO $$
DECLARE
    c record;
BEGIN
    FOR c IN SELECT * FROM hub.channels ORDER BY channel LOOP
        EXECUTE format('DROP TRIGGER IF EXISTS hub_capture_update ON %s', c.tbl);
        PERFORM hub.attach(c.tbl, c.channel, c.tenant_column, c.subject_column, c.ops);
    END LOOP;
END
$$;
