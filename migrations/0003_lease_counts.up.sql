-- Live leases per key and node, kept by a trigger on hub.leases: taking a
-- lease sums a key's counters over the live nodes instead of counting the
-- key's leases, which made connecting N connections on one key cost
-- O(N²) (10,000 took 43 s). Acquirers of a key are serialized by the
-- key's row lock (store.LeaseAcquire), so they always see the counts of
-- the leases committed before them.
CREATE TABLE hub.lease_counts (
    key_id  bigint NOT NULL,
    node    text NOT NULL REFERENCES hub.nodes ON DELETE CASCADE,
    total   integer NOT NULL,
    eospark integer NOT NULL,
    PRIMARY KEY (key_id, node)
);

CREATE FUNCTION hub.lease_count() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('DELETE', 'UPDATE') THEN
        UPDATE hub.lease_counts
        SET total = total - 1, eospark = eospark - (OLD.protocol = 'eospark')::int
        WHERE key_id = OLD.key_id AND node = OLD.node;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO hub.lease_counts AS c (key_id, node, total, eospark)
        VALUES (NEW.key_id, NEW.node, 1, (NEW.protocol = 'eospark')::int)
        ON CONFLICT (key_id, node)
        DO UPDATE SET total = c.total + 1, eospark = c.eospark + excluded.eospark;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER lease_count
AFTER INSERT OR DELETE OR UPDATE OF key_id, node, protocol ON hub.leases
FOR EACH ROW EXECUTE FUNCTION hub.lease_count();

INSERT INTO hub.lease_counts (key_id, node, total, eospark)
SELECT key_id, node, count(*), count(*) FILTER (WHERE protocol = 'eospark')
FROM hub.leases GROUP BY key_id, node;
