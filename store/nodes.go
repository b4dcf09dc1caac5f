package store

import (
	"context"
	"fmt"
	"time"
)

// NodeAliveFor is how long a node counts as alive after its last heartbeat;
// only leases of live nodes count toward a key's limit or show in the admin
// lists. Nodes beat every second (hub.NodeConfig.Beat), so a few stalled
// beats are tolerated, and a crashed node's leases stop counting within
// SPEC §3's 15 s.
const NodeAliveFor = 10 * time.Second

// nodeForgetAfter is how long a dead node's row (and, by cascade, its
// leases) is kept. Far longer than NodeAliveFor so that a node cut off from
// the database for a few seconds finds its leases again.
const nodeForgetAfter = time.Minute

// NodeHeartbeat records that node is alive, registering it on its first
// beat, and returns when the node's row was created. A node compares that
// with the value of its previous beat: a different one means the cluster
// forgot the node meanwhile (it was stalled past nodeForgetAfter: a paused
// VM, SIGSTOP, an I/O stall) and its leases went with the row, so it must
// restore them with LeaseSync. started_at serves as the row's incarnation
// because every path that re-creates the row (this, LeaseAcquire,
// LeaseSync) sets it afresh.
//
// It also deletes nodes dead for over a minute, with their leases, and the
// doorbells of nodes that are gone (an armed one would make every writer
// ring for no one), so crashed nodes do not pile up; SKIP LOCKED keeps
// nodes that beat at the same moment from waiting on (or deadlocking over)
// the same dead row.
func (s *Store) NodeHeartbeat(ctx context.Context, node string) (time.Time, error) {
	var registered time.Time
	err := s.pool.QueryRow(ctx, `
		WITH forgotten AS (
			DELETE FROM hub.nodes WHERE node IN (
				SELECT node FROM hub.nodes
				WHERE heartbeat_at < now() - $2::interval AND node <> $1
				FOR UPDATE SKIP LOCKED)
			RETURNING node),
		unrung AS (
			DELETE FROM hub.doorbell WHERE node IN (
				SELECT d.node FROM hub.doorbell d
				WHERE d.node <> $1 AND (d.node IN (SELECT node FROM forgotten)
				      OR NOT EXISTS (SELECT 1 FROM hub.nodes n WHERE n.node = d.node))
				FOR UPDATE SKIP LOCKED))
		INSERT INTO hub.nodes (node) VALUES ($1)
		ON CONFLICT (node) DO UPDATE SET heartbeat_at = now()
		RETURNING started_at`,
		node, nodeForgetAfter).Scan(&registered)
	if err != nil {
		return time.Time{}, fmt.Errorf("heartbeat of node %q: %w", node, err)
	}
	return registered, nil
}

// NodeStop deletes node, its doorbell and all its leases: a node stopping gracefully
// calls it last, so its connections' slots are free elsewhere at once
// (SPEC §3) instead of after NodeAliveFor.
func (s *Store) NodeStop(ctx context.Context, node string) error {
	if _, err := s.pool.Exec(ctx, `
		WITH unrung AS (DELETE FROM hub.doorbell WHERE node = $1)
		DELETE FROM hub.nodes WHERE node = $1`, node); err != nil {
		return fmt.Errorf("stop node %q: %w", node, err)
	}
	return nil
}
