package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hubdev/hub/store"
)

// The capture rings while any node's doorbell is armed, or while there is
// no row at all (SPEC §2.2); a disarmed doorbell alone keeps it silent.
// Each case is followed by a marker notification: notifications arrive in
// commit order, so what comes before the marker is exactly what the case
// rang. A writer outside READ COMMITTED always rings.
func TestDoorbellRingsOnlyWhenArmed(t *testing.T) {
	b := setupCapture(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	l, err := b.store.Listen(ctx)
	require.NoError(t, err)
	defer l.Close()

	rang := func(t *testing.T, write ...string) bool {
		t.Helper()
		if write == nil {
			write = []string{`INSERT INTO orders (client, account_id) VALUES ('acme', 'bell')`}
		}
		b.exec(t, append(write, `SELECT pg_notify('hub_channels', 'marker')`)...)
		n := 0
		for {
			ch, err := l.Wait(ctx, time.Minute)
			require.NoError(t, err)
			if ch == store.NotifyChannels {
				require.LessOrEqual(t, n, 1, "one transaction rings once")
				return n == 1
			}
			n++
		}
	}

	require.True(t, rang(t), "no row: rings")
	require.NoError(t, b.store.DoorbellDisarm(ctx, "a"))
	require.False(t, rang(t), "the only node disarmed")
	_, err = b.store.DoorbellArm(ctx, "b")
	require.NoError(t, err)
	require.True(t, rang(t), "another node armed")
	require.NoError(t, b.store.DoorbellDisarm(ctx, "b"))
	require.False(t, rang(t), "both disarmed")
	// Its snapshot may predate an arm a reader waits on.
	require.True(t, rang(t, `BEGIN ISOLATION LEVEL REPEATABLE READ`,
		`INSERT INTO orders (client, account_id) VALUES ('acme', 'bell')`, `COMMIT`), "a REPEATABLE READ writer rings")
	b.exec(t, `TRUNCATE hub.doorbell`) // what a crash leaves of an UNLOGGED table
	require.True(t, rang(t), "emptied: rings")
}

// The xmax an arm returns is past every transaction that could have read
// the doorbell before the arm committed: here one that has written.
func TestDoorbellArmIsPastOpenWriters(t *testing.T) {
	b := setupCapture(t)
	ctx := context.Background()
	tx, err := b.pool.Begin(ctx)
	require.NoError(t, err)
	defer tx.Rollback(ctx)
	var xid uint64
	require.NoError(t, tx.QueryRow(ctx, `SELECT pg_current_xact_id()::text::bigint`).Scan(&xid))
	xmax, err := b.store.DoorbellArm(ctx, "a")
	require.NoError(t, err)
	require.Greater(t, xmax, xid)
}

// A stopped node's doorbell goes with it, and a heartbeat clears the
// doorbells of nodes that are gone: an armed one left behind would make
// every writer ring.
func TestDoorbellOfGoneNodes(t *testing.T) {
	b := setupCapture(t)
	ctx := context.Background()
	armed := func() []string {
		var nodes []string
		rows, err := b.pool.Query(ctx, `SELECT node FROM hub.doorbell ORDER BY node`)
		require.NoError(t, err)
		for rows.Next() {
			var n string
			require.NoError(t, rows.Scan(&n))
			nodes = append(nodes, n)
		}
		require.NoError(t, rows.Err())
		return nodes
	}
	for _, n := range []string{"a", "b"} {
		_, err := b.store.NodeHeartbeat(ctx, n)
		require.NoError(t, err)
		_, err = b.store.DoorbellArm(ctx, n)
		require.NoError(t, err)
	}
	_, err := b.store.DoorbellArm(ctx, "never-registered")
	require.NoError(t, err)

	require.NoError(t, b.store.NodeStop(ctx, "a"))
	require.Equal(t, []string{"b", "never-registered"}, armed())
	_, err = b.store.NodeHeartbeat(ctx, "b")
	require.NoError(t, err)
	require.Equal(t, []string{"b"}, armed())
}
