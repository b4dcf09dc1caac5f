-- Back to the capture of migration 6, which rings on every change.
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
    -- Only while the table (or, for a partition, the partitioned table
    -- whose trigger it inherited) is attached under this channel: see
    -- migration 6. Last before the INSERT, so that rows skipped anyway
    -- pay nothing; one lookup of hub.channels by primary key.
    IF NOT EXISTS (SELECT FROM hub.channels c
                   WHERE c.channel = chan
                     AND (c.tbl = TG_RELID OR c.tbl IN (SELECT pg_partition_ancestors(TG_RELID)))) THEN
        RETURN NULL;
    END IF;
    INSERT INTO hub.events (channel, op, client, subject, payload, old)
    VALUES (chan, TG_OP, owner, cur ->> subj, coalesce(payload, '{}'), changed);
    PERFORM pg_notify('hub_events', ''); -- identical notifications of one transaction fold into one
    RETURN NULL;
END
$$;

REVOKE EXECUTE ON FUNCTION hub.capture() FROM PUBLIC;

DROP TABLE hub.doorbell;
