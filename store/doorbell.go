package store

import (
	"context"
	"fmt"
	"strconv"
)

// DoorbellArm asks the capture to ring for node's reader (SPEC §2.2) and
// returns a transaction id taken after the arm committed: a writer that
// read the doorbell disarmed had its id before it read (the row change
// that fires the capture takes it), so before the arm committed, so below
// the returned id; once the reader's watermark has passed it, every change
// the reader has not read rings. Not a snapshot's xmax: that is one past
// the newest finished id, and a writer may hold a larger one. Two
// statements: an id taken in the arm's own transaction would come before
// its commit.
func (s *Store) DoorbellArm(ctx context.Context, node string) (uint64, error) {
	if _, err := s.pool.Exec(ctx, `
		INSERT INTO hub.doorbell (node, armed) VALUES ($1, true)
		ON CONFLICT (node) DO UPDATE SET armed = true`, node); err != nil {
		return 0, fmt.Errorf("arm the doorbell of node %q: %w", node, err)
	}
	var after string
	if err := s.pool.QueryRow(ctx, `SELECT pg_current_xact_id()::text`).Scan(&after); err != nil {
		return 0, fmt.Errorf("arm the doorbell of node %q: %w", node, err)
	}
	x, err := strconv.ParseUint(after, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("arm the doorbell: id %q: %w", after, err)
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
