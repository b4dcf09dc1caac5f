-- The hub's own objects (schema hub, created before golang-migrate runs so
-- that its version table can live there) and the five business tables.

CREATE TABLE hub.clients (
    client     text PRIMARY KEY CHECK (client ~ '^[a-z0-9_-]{1,64}$'),
    active     boolean NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE hub.api_keys (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    client          text NOT NULL REFERENCES hub.clients,
    key_hash        bytea NOT NULL UNIQUE CHECK (length(key_hash) = 32),
    label           text NOT NULL DEFAULT '',
    max_connections integer NOT NULL DEFAULT 5 CHECK (max_connections >= 1),
    created_at      timestamptz NOT NULL DEFAULT now(),
    revoked_at      timestamptz
);
CREATE INDEX api_keys_client ON hub.api_keys (client);

-- A node is alive while its heartbeat is fresh; leases of a dead node stop
-- counting (SPEC §3).
CREATE TABLE hub.nodes (
    node         text PRIMARY KEY,
    started_at   timestamptz NOT NULL DEFAULT now(),
    heartbeat_at timestamptz NOT NULL DEFAULT now()
);

-- One row per live connection of any transport: the cluster-wide
-- connection count of a key and the admin connection list.
CREATE TABLE hub.leases (
    id           text PRIMARY KEY,
    node         text NOT NULL REFERENCES hub.nodes ON DELETE CASCADE,
    key_id       bigint NOT NULL REFERENCES hub.api_keys,
    client       text NOT NULL,
    protocol     text NOT NULL CHECK (protocol IN ('ws', 'eospark', 'sse')),
    remote_addr  text NOT NULL DEFAULT '',
    channels     text[] NOT NULL DEFAULT '{}',
    connected_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX leases_key ON hub.leases (key_id);
CREATE INDEX leases_node ON hub.leases (node);

-- The event log. A position is (xid, id): readers order by it and read only
-- below the oldest open transaction (SPEC §2.3).
CREATE TABLE hub.events (
    id         bigint GENERATED ALWAYS AS IDENTITY,
    xid        xid8 NOT NULL DEFAULT pg_current_xact_id(),
    channel    text NOT NULL,
    op         text NOT NULL CHECK (op IN ('INSERT', 'UPDATE', 'DELETE')),
    client     text,
    subject    text,
    payload    jsonb NOT NULL,
    old        jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (xid, id)
);

-- The newest position retention has deleted (the log's horizon): a resume
-- from before it has lost events, one from after it has not.
CREATE TABLE hub.horizon (
    single boolean PRIMARY KEY DEFAULT true CHECK (single),
    xid    xid8 NOT NULL DEFAULT '0',
    id     bigint NOT NULL DEFAULT 0
);
INSERT INTO hub.horizon DEFAULT VALUES;

CREATE TABLE hub.channels (
    channel        text PRIMARY KEY CHECK (channel ~ '^[A-Za-z0-9_.-]{1,64}$'),
    tbl            regclass NOT NULL UNIQUE,
    tenant_column  text,
    subject_column text,
    ops            text[] NOT NULL
);

-- lowerCamelCase of a column name: exchange_order_id -> exchangeOrderId,
-- period1_home -> period1Home, leading and trailing underscores dropped.
CREATE FUNCTION hub.camel(col text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT coalesce(string_agg(CASE WHEN i = 1 THEN p ELSE upper(left(p, 1)) || substr(p, 2) END, '' ORDER BY i), '')
    FROM unnest(string_to_array(btrim(col, '_'), '_')) WITH ORDINALITY AS t(p, i)
$$;

-- A timestamptz value as to_jsonb writes it in hub.capture, which runs
-- with TimeZone UTC ("…+00:00"), turned into RFC 3339 with Z; the stored
-- fraction is kept. Neither STRICT nor more than one expression, so that
-- the planner inlines it (a SQL function that is not inlined is planned
-- again at every call).
CREATE FUNCTION hub.utc_tz(v jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN jsonb_typeof(v) = 'string' AND right(v #>> '{}', 6) = '+00:00'
                THEN to_jsonb(left(v #>> '{}', -6) || 'Z') ELSE v END
$$;

-- A timestamp without time zone value, taken to be UTC already.
CREATE FUNCTION hub.utc_ts(v jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN jsonb_typeof(v) = 'string' AND v #>> '{}' NOT IN ('infinity', '-infinity')
                THEN to_jsonb((v #>> '{}') || 'Z') ELSE v END
$$;

-- How a table's columns go on the wire, computed once by hub.attach and
-- handed to the trigger: {"column": ["wireKey"], "ts_column": ["tsColumn", "tz"|"ts"]}.
CREATE FUNCTION hub.column_map(tbl regclass) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT coalesce(jsonb_object_agg(attname, CASE atttypid
               WHEN 'timestamptz'::regtype THEN jsonb_build_array(hub.camel(attname), 'tz')
               WHEN 'timestamp'::regtype THEN jsonb_build_array(hub.camel(attname), 'ts')
               ELSE jsonb_build_array(hub.camel(attname)) END), '{}')
    FROM pg_attribute
    WHERE attrelid = tbl AND attnum > 0 AND NOT attisdropped
$$;

-- A column's entry of the map, for a column added after the attach.
CREATE FUNCTION hub.column_entry(rel oid, col text) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT CASE atttypid
               WHEN 'timestamptz'::regtype THEN jsonb_build_array(hub.camel(col), 'tz')
               WHEN 'timestamp'::regtype THEN jsonb_build_array(hub.camel(col), 'ts')
               ELSE jsonb_build_array(hub.camel(col)) END
    FROM pg_attribute WHERE attrelid = rel AND attname = col AND NOT attisdropped
$$;

-- A value's wire form given its column's entry.
CREATE FUNCTION hub.wire_value(v jsonb, entry jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE entry ->> 1 WHEN 'tz' THEN hub.utc_tz(v) WHEN 'ts' THEN hub.utc_ts(v) ELSE v END
$$;

-- The capture trigger, attached per table by hub.attach with arguments
-- (channel, tenant column, subject column, column map; '' for none). The
-- row is turned into its wire form in one statement, whose plan plpgsql
-- keeps: camelCase keys, timestamps in UTC with Z whatever the writer's
-- TimeZone (to_jsonb writes the session's offset, hence the function's own
-- TimeZone), every other value as to_jsonb gives it, jsonb columns
-- untouched. It never raises for data reasons: a writer's transaction must
-- not fail because of the hub.
CREATE FUNCTION hub.capture() RETURNS trigger
LANGUAGE plpgsql SET TimeZone = 'UTC' AS $$
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
        owner := cur ->> tenant;
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

-- Broadcast a table's changes as channel. tenant_column null makes the
-- channel global; ops are any of INSERT, UPDATE, DELETE. The column map is
-- taken now: attach again after changing a column's type.
CREATE FUNCTION hub.attach(tbl regclass, channel text, tenant_column text, subject_column text, ops text[])
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

-- Stop broadcasting a table.
CREATE FUNCTION hub.detach(tbl regclass) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('DROP TRIGGER IF EXISTS hub_capture ON %s', tbl);
    DELETE FROM hub.channels c WHERE c.tbl = detach.tbl;
    PERFORM pg_notify('hub_channels', '');
END
$$;

-- The reader's page: events after a position, below the watermark, in
-- position order. The planner settings keep it an index walk at any size,
-- even when statistics were taken while the log was empty (SPEC §2.3).
CREATE FUNCTION hub.events_after(after_xid xid8, after_id bigint, max_rows integer)
RETURNS SETOF hub.events
LANGUAGE sql STABLE
SET enable_seqscan = off SET enable_sort = off SET enable_bitmapscan = off AS $$
    SELECT * FROM hub.events e
    WHERE (e.xid, e.id) > (after_xid, after_id)
      AND e.xid < pg_snapshot_xmin(pg_current_snapshot())
    ORDER BY e.xid, e.id
    LIMIT max_rows
$$;

-- Business tables (SPEC §2.1). client names a row of hub.clients; there is
-- no foreign key so that a writer never fails because of the hub.
CREATE TABLE public.orders (
    order_id          bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    client            text NOT NULL,
    account_id        text,
    fixture_id        text,
    outcome_id        integer,
    exchange          text,
    exchange_order_id text,
    order_status      text,
    matched_status    text,
    order_cents       numeric,
    order_stake       numeric,
    matched_stake     numeric,
    matched_at        timestamptz,
    created_at        timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE public.bets (
    bet_id        bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    order_id      bigint,
    client        text NOT NULL,
    account_id    text,
    bookmaker     text,
    placed_price  numeric,
    placed_stake  numeric,
    bet_status    text,
    sent_data     jsonb,
    received_data jsonb,
    placed_at     timestamptz
);

CREATE TABLE public.accounts (
    account_id text PRIMARY KEY,
    client     text NOT NULL,
    venue      text,
    balance    numeric,
    currency   text,
    status     text,
    updated_at timestamptz
);

CREATE TABLE public.scores (
    fixture_id     text PRIMARY KEY,
    live           boolean,
    status_id      integer,
    current_period text,
    current_minute integer,
    scores         jsonb,
    updated_at     timestamptz
);

CREATE TABLE public.emergency (
    id           smallint PRIMARY KEY DEFAULT 1 CHECK (id = 1),
    emergency    boolean NOT NULL DEFAULT false,
    reason       text,
    triggered_at timestamptz
);
INSERT INTO public.emergency (id, emergency) VALUES (1, false);

SELECT hub.attach('public.orders', 'orders', 'client', 'account_id', '{INSERT,UPDATE}');
SELECT hub.attach('public.bets', 'bets', 'client', 'account_id', '{INSERT,UPDATE}');
SELECT hub.attach('public.accounts', 'accounts', 'client', 'account_id', '{UPDATE}');
SELECT hub.attach('public.scores', 'scores', NULL, 'fixture_id', '{UPDATE}');
SELECT hub.attach('public.emergency', 'emergency', NULL, NULL, '{UPDATE}');
