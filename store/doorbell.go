package store

import (
	"context"
	"fmt"
	"strconv"
)

// DoorbellArm asks the capture to ring for node's reader (SPEC §2.2) and
// returns the xmax of a snapshot taken after the arm committed: every
// transaction that may have read the doorbell disarmed has an id below it,
// so once the reader's watermark has passed it, a change it has not read
// rings. Two statements, not one: the arm's own snapshot is older than its
// commit, and a writer that read between the two would not be below it.
func (s *Store) DoorbellArm(ctx context.Context, node string) (uint64, error) {
	if _, err := s.pool.Exec(ctx, `
		INSERT INTO hub.doorbell (node, armed) VALUES ($1, true)
		ON CONFLICT (node) DO UPDATE SET armed = true`, node); err != nil {
		return 0, fmt.Errorf("arm the doorbell of node %q: %w", node, err)
	}
	var xmax string
	if err := s.pool.QueryRow(ctx, `SELECT pg_snapshot_xmax(pg_current_snapshot())::text`).Scan(&xmax); err != nil {
		return 0, fmt.Errorf("arm the doorbell of node %q: %w", node, err)
	}
	x, err := strconv.ParseUint(xmax, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("arm the doorbell: xmax %q: %w", xmax, err)
	}
	return x, nil
}

// DoorbellDisarm tells the capture that node's reader reads without it.
// The doorbell still rings while another node's is armed.
func (s *Store) DoorbellDisarm(ctx context.Context, node string) error {
	if _, err := s.pool.Exec(ctx, `
		INSERT INTO hub.doorbell (node, armed) VALUES ($1, false)
		ON CONFLICT (node) DO UPDATE SET armed = false`, node); err != nil {
		return fmt.Errorf("disarm the doorbell of node %q: %w", node, err)
	}
	return nil
}
