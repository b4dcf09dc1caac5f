-- The adaptive doorbell (SPEC §2.2). PostgreSQL serializes the commits of
-- every notifying transaction of the cluster on one lock, held across the
-- commit record and its flush, so the capture rings only while some node's
-- reader waits for it. Each node's reader keeps a row here: armed just
-- before it sleeps, disarmed while it reads back to back. UNLOGGED: the
-- state is worth nothing after a crash, which empties the table, and an
-- empty table counts as armed, so a node that has not armed yet is still
-- woken.
CREATE UNLOGGED TABLE hub.doorbell (
    node  text PRIMARY KEY,
    armed boolean NOT NULL
);

-- The capture of migration 6, ringing only when the doorbell is armed.
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

REVOKE EXECUTE ON FUNCTION hub.capture() FROM PUBLIC;
