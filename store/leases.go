package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Refusals of LeaseAcquire (SPEC §3–§5); api maps them to the protocol's
// error frames. They live here rather than in errors.go only to keep the
// lease work in files of its own.
var (
	// ErrKeyInvalid: the key does not exist, is revoked, or its client is
	// inactive ("Invalid API key").
	ErrKeyInvalid = errors.New("api key invalid")
	// ErrRepeatConnection: the key already has a live protocol B connection
	// ("No repeat connection.").
	ErrRepeatConnection = errors.New("repeat connection")
	// ErrConnectionLimit: the key is at its max_connections cluster-wide.
	ErrConnectionLimit = errors.New("connection limit exceeded")
)

// The transports a lease can be for; the leases table's check constraint
// allows exactly these.
const (
	ProtocolWS      = "ws"      // protocol A
	ProtocolEOSPark = "eospark" // protocol B
	ProtocolSSE     = "sse"
)

// LeaseCloseReason is why a node must close a connection, as
// LeaseCloseList gives it; the hub turns it into the close it sends (SPEC
// §3, §8).
type LeaseCloseReason uint8

const (
	LeaseCloseKeyRevoked LeaseCloseReason = iota + 1
	LeaseCloseClientDeactivated
	LeaseCloseKicked
)

// Lease is one live connection as the cluster sees it.
type Lease struct {
	ID          string
	Node        string
	Client      string
	KeyID       int64
	Protocol    string
	RemoteAddr  string
	ConnectedAt time.Time
	Channels    []string
}

// LeaseAcquireParams describes a connection that has just authenticated.
type LeaseAcquireParams struct {
	ID         string // chosen by the node, unique in the cluster
	Node       string
	KeyID      int64
	Client     string // the key's client; a mismatch is ErrKeyInvalid, empty skips the check
	Protocol   string // ProtocolWS, ProtocolEOSPark or ProtocolSSE
	RemoteAddr string
	Channels   []string
}

// LeaseClose is a connection its node must close, and why.
type LeaseClose struct {
	ID     string
	Reason LeaseCloseReason
}

// LeaseAcquire takes a slot of the key's cluster-wide connection limit for
// a new connection. It fails with ErrKeyInvalid, then (for protocol B)
// ErrRepeatConnection, then ErrConnectionLimit, checked in the order SPEC
// §5 gives; ErrExists if the id is taken. Nodes racing for the last slot
// are serialized on the key's row, so the limit holds across the cluster.
func (s *Store) LeaseAcquire(ctx context.Context, p LeaseAcquireParams) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		maxConns, err := leaseLockKey(ctx, tx, p)
		if err != nil {
			return err
		}
		// A statement of its own, after the lock: a query that waits for a
		// row lock keeps the snapshot it started with, so counting in the
		// locking query would miss the lease the previous holder inserted.
		// The counters are kept by a trigger on hub.leases (migration 3).
		var total, eospark int
		err = tx.QueryRow(ctx, `
			SELECT coalesce(sum(c.total), 0), coalesce(sum(c.eospark), 0)
			FROM hub.lease_counts c JOIN hub.nodes n USING (node)
			WHERE c.key_id = $1 AND n.heartbeat_at > now() - $2::interval`,
			p.KeyID, NodeAliveFor).Scan(&total, &eospark)
		if err != nil {
			return fmt.Errorf("count leases: %w", err)
		}
		if p.Protocol == ProtocolEOSPark && eospark > 0 {
			return ErrRepeatConnection
		}
		if total >= maxConns {
			return ErrConnectionLimit
		}
		return leaseInsert(ctx, tx, p)
	})
	if err != nil {
		return fmt.Errorf("acquire lease %q for key %d: %w", p.ID, p.KeyID, err)
	}
	return nil
}

// leaseLockKey locks the key's row for the rest of tx and returns its
// max_connections; ErrKeyInvalid if the key may not connect. NO KEY UPDATE
// serializes acquirers of the key just as FOR UPDATE would, without
// blocking the key-share locks that inserting a lease takes elsewhere.
func leaseLockKey(ctx context.Context, tx pgx.Tx, p LeaseAcquireParams) (int, error) {
	var (
		client   string
		maxConns int
		valid    bool
	)
	err := tx.QueryRow(ctx, `
		SELECT k.client, k.max_connections, k.revoked_at IS NULL AND c.active
		FROM hub.api_keys k JOIN hub.clients c USING (client)
		WHERE k.id = $1
		FOR NO KEY UPDATE OF k`, p.KeyID).Scan(&client, &maxConns, &valid)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, ErrKeyInvalid
	}
	if err != nil {
		return 0, fmt.Errorf("lock api key: %w", err)
	}
	if !valid || (p.Client != "" && p.Client != client) {
		return 0, ErrKeyInvalid
	}
	return maxConns, nil
}

// leaseInsertSQL inserts a lease with its key's client, registering the
// node if a cleanup removed its row while it was cut off from the database.
const leaseInsertSQL = `
	WITH node AS (INSERT INTO hub.nodes (node) VALUES ($2) ON CONFLICT DO NOTHING)
	INSERT INTO hub.leases (id, node, key_id, client, protocol, remote_addr, channels)
	SELECT $1, $2, k.id, k.client, $4, $5, $6 FROM hub.api_keys k WHERE k.id = $3`

func leaseInsert(ctx context.Context, tx pgx.Tx, p LeaseAcquireParams) error {
	_, err := tx.Exec(ctx, leaseInsertSQL, p.ID, p.Node, p.KeyID, p.Protocol, p.RemoteAddr, nonNil(p.Channels))
	if isUniqueViolation(err) {
		return fmt.Errorf("lease %q: %w", p.ID, ErrExists)
	}
	if err != nil {
		return fmt.Errorf("insert lease: %w", err)
	}
	return nil
}

// LeaseRelease frees a connection's slot; releasing a lease that is gone
// already is not an error.
func (s *Store) LeaseRelease(ctx context.Context, id string) error {
	if _, err := s.pool.Exec(ctx, `DELETE FROM hub.leases WHERE id = $1`, id); err != nil {
		return fmt.Errorf("release lease %q: %w", id, err)
	}
	return nil
}

// LeaseUpdateChannels records a connection's current channels for the admin
// list; ErrNotFound if the lease is gone.
func (s *Store) LeaseUpdateChannels(ctx context.Context, id string, channels []string) error {
	tag, err := s.pool.Exec(ctx, `UPDATE hub.leases SET channels = $2 WHERE id = $1`, id, nonNil(channels))
	if err != nil {
		return fmt.Errorf("update channels of lease %q: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("lease %q: %w", id, ErrNotFound)
	}
	return nil
}

// LeaseSync makes node's leases exactly live, keeping those that exist and
// restoring missing ones without a limit check. A node calls it once the
// database is back after an outage (a failed heartbeat or release): its
// connections stayed open meanwhile, a release may have been lost, and
// another node may have forgotten it with all its leases (SPEC §2.3
// "Outages"). Restored leases of keys revoked meanwhile then show up in
// LeaseCloseList like any other. The Node of each of live is ignored.
func (s *Store) LeaseSync(ctx context.Context, node string, live []LeaseAcquireParams) error {
	ids := make([]string, len(live))
	for i, p := range live {
		ids[i] = p.ID
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `
			INSERT INTO hub.nodes (node) VALUES ($1)
			ON CONFLICT (node) DO UPDATE SET heartbeat_at = now()`, node); err != nil {
			return fmt.Errorf("register node: %w", err)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM hub.leases WHERE node = $1 AND id <> ALL ($2)`, node, ids); err != nil {
			return fmt.Errorf("delete stale leases: %w", err)
		}
		// One round trip however many connections the node holds.
		var b pgx.Batch
		for _, p := range live {
			b.Queue(leaseInsertSQL+` ON CONFLICT (id) DO NOTHING`,
				p.ID, node, p.KeyID, p.Protocol, p.RemoteAddr, nonNil(p.Channels))
		}
		if err := tx.SendBatch(ctx, &b).Close(); err != nil {
			return fmt.Errorf("restore leases: %w", err)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("sync leases of node %q: %w", node, err)
	}
	return nil
}

// LeaseKick asks the node that owns a connection to close it with
// "closed by admin"; the node finds the mark on its next LeaseCloseList.
// ErrNotFound if there is no such connection on a live node.
func (s *Store) LeaseKick(ctx context.Context, id string) error {
	tag, err := s.pool.Exec(ctx, `
		UPDATE hub.leases l SET kicked_at = coalesce(l.kicked_at, now())
		FROM hub.nodes n
		WHERE l.id = $1 AND n.node = l.node AND n.heartbeat_at > now() - $2::interval`,
		id, NodeAliveFor)
	if err != nil {
		return fmt.Errorf("kick lease %q: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("connection %q: %w", id, ErrNotFound)
	}
	return nil
}

// LeaseCloseList returns node's connections that must be closed: their key
// was revoked, their client deactivated, or an admin kicked them. A node
// polls it about every second, which bounds SPEC §3's 2 s. A lease stays in
// the list until the node releases it, so a connection already closing may
// be listed again.
func (s *Store) LeaseCloseList(ctx context.Context, node string) ([]LeaseClose, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT l.id, k.revoked_at IS NOT NULL, NOT c.active, l.kicked_at IS NOT NULL
		FROM hub.leases l
		JOIN hub.api_keys k ON k.id = l.key_id
		JOIN hub.clients c ON c.client = k.client
		WHERE l.node = $1 AND (k.revoked_at IS NOT NULL OR NOT c.active OR l.kicked_at IS NOT NULL)
		ORDER BY l.id`, node)
	if err != nil {
		return nil, fmt.Errorf("list leases to close on node %q: %w", node, err)
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (LeaseClose, error) {
		var (
			c                         LeaseClose
			revoked, inactive, kicked bool
		)
		err := r.Scan(&c.ID, &revoked, &inactive, &kicked)
		switch {
		case revoked:
			c.Reason = LeaseCloseKeyRevoked
		case inactive:
			c.Reason = LeaseCloseClientDeactivated
		case kicked:
			c.Reason = LeaseCloseKicked
		}
		return c, err
	})
	if err != nil {
		return nil, fmt.Errorf("list leases to close on node %q: %w", node, err)
	}
	return list, nil
}

// LeaseList returns the connections of every live node, oldest first.
func (s *Store) LeaseList(ctx context.Context) ([]Lease, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT l.id, l.node, l.client, l.key_id, l.protocol, l.remote_addr, l.connected_at, l.channels
		FROM hub.leases l JOIN hub.nodes n USING (node)
		WHERE n.heartbeat_at > now() - $1::interval
		ORDER BY l.connected_at, l.id`, NodeAliveFor)
	if err != nil {
		return nil, fmt.Errorf("list leases: %w", err)
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Lease, error) {
		var l Lease
		err := r.Scan(&l.ID, &l.Node, &l.Client, &l.KeyID, &l.Protocol, &l.RemoteAddr, &l.ConnectedAt, &l.Channels)
		return l, err
	})
	if err != nil {
		return nil, fmt.Errorf("list leases: %w", err)
	}
	return list, nil
}

// LeaseCountByKey returns the live connections of each of client's keys;
// keys without any are absent.
func (s *Store) LeaseCountByKey(ctx context.Context, client string) (map[int64]int, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT l.key_id, count(*)
		FROM hub.leases l JOIN hub.nodes n USING (node)
		WHERE l.client = $1 AND n.heartbeat_at > now() - $2::interval
		GROUP BY l.key_id`, client, NodeAliveFor)
	if err != nil {
		return nil, fmt.Errorf("count leases of %q by key: %w", client, err)
	}
	counts := map[int64]int{}
	var (
		key int64
		n   int
	)
	_, err = pgx.ForEachRow(rows, []any{&key, &n}, func() error {
		counts[key] = n
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("count leases of %q by key: %w", client, err)
	}
	return counts, nil
}

// LeaseCountByClient returns the live connections of each client; clients
// without any are absent.
func (s *Store) LeaseCountByClient(ctx context.Context) (map[string]int, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT l.client, count(*)
		FROM hub.leases l JOIN hub.nodes n USING (node)
		WHERE n.heartbeat_at > now() - $1::interval
		GROUP BY l.client`, NodeAliveFor)
	if err != nil {
		return nil, fmt.Errorf("count leases by client: %w", err)
	}
	counts := map[string]int{}
	var (
		client string
		n      int
	)
	_, err = pgx.ForEachRow(rows, []any{&client, &n}, func() error {
		counts[client] = n
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("count leases by client: %w", err)
	}
	return counts, nil
}

// nonNil turns a nil slice into an empty one: pgx sends nil as NULL, and
// channels is NOT NULL.
func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
