package hub_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
	"golang.org/x/sync/errgroup"

	"github.com/hubdev/hub/hub"
	"github.com/hubdev/hub/store"
	"github.com/hubdev/hub/store/storetest"
)

// doorbellArmed reads node's doorbell: nil when it has no row.
func doorbellArmed(t *testing.T, pool *pgxpool.Pool, node string) *bool {
	t.Helper()
	var armed bool
	err := pool.QueryRow(context.Background(), `SELECT armed FROM hub.doorbell WHERE node = $1`, node).Scan(&armed)
	if err == pgx.ErrNoRows {
		return nil
	}
	require.NoError(t, err)
	return &armed
}

// awaitDoorbell waits until node's doorbell is in state armed, polling the
// row: the reader changes it without telling anyone.
func awaitDoorbell(t *testing.T, pool *pgxpool.Pool, node string, armed bool) {
	t.Helper()
	require.Eventually(t, func() bool {
		a := doorbellArmed(t, pool, node)
		return a != nil && *a == armed
	}, 30*time.Second, 2*time.Millisecond, "doorbell of %s armed=%v", node, armed)
}

// countNotifications counts the doorbell's notifications in the database
// until ctx ends.
func countNotifications(ctx context.Context, t *testing.T, st *store.Store, g *errgroup.Group) *atomic.Int64 {
	t.Helper()
	l, err := st.Listen(ctx)
	require.NoError(t, err)
	var n atomic.Int64
	g.Go(func() error {
		defer l.Close()
		for {
			ch, err := l.Wait(ctx, time.Minute)
			if ctx.Err() != nil {
				return nil
			}
			if err != nil {
				return err
			}
			if ch == store.NotifyEvents {
				n.Add(1)
			}
		}
	})
	return &n
}

// Under steady writes the reader reads back to back with its doorbell
// disarmed, and writers stop ringing (SPEC §2.2); nothing is lost or
// repeated. A reader that sleeps on every change hears one notification
// per transaction.
func TestDoorbellSilentUnderSteadyWrites(t *testing.T) {
	t.Parallel()
	pool, _ := storetest.NewPool(t)
	b, _ := setupReader(t, pool, hub.ReaderConfig{Node: "n1", PageSize: 100})
	<-b.listening

	ctx, cancel := context.WithCancel(context.Background())
	var listening errgroup.Group
	rings := countNotifications(ctx, t, b.store, &listening)
	const writers, txs = 4, 500
	var writing errgroup.Group
	writing.Go(func() error { return writeConcurrently(ctx, pool, writers, txs, nil) })
	// Count from the moment the reader has found the writes steady.
	awaitDoorbell(t, pool, "n1", false)
	rings0, written0 := rings.Load(), len(b.got.wait(t, 0))
	require.NoError(t, writing.Wait())
	events := b.got.wait(t, writers*txs)
	requireExactlyOnce(t, events, writers, txs)
	cancel()
	require.NoError(t, listening.Wait())
	rang, written := rings.Load()-rings0, len(events)-written0
	t.Logf("%d of the %d transactions after the reader disarmed rang", rang, written)
	require.Greater(t, written, writers*txs/4, "most writes come after the disarm")
	require.Less(t, rang, int64(written/4), "most transactions rang no doorbell")
}

// An idle reader is armed and sleeps: a change rings it. The poll is off,
// so only the doorbell can bring the change.
func TestDoorbellWakesIdleReader(t *testing.T) {
	t.Parallel()
	pool, _ := storetest.NewPool(t)
	b, _ := setupReader(t, pool, hub.ReaderConfig{Node: "n1", PollInterval: time.Hour})
	<-b.listening
	awaitDoorbell(t, pool, "n1", true)
	b.exec(t, `INSERT INTO orders (client, account_id) VALUES ('acme', 'one')`)
	require.Equal(t, "one", b.got.wait(t, 1)[0].Subject)
}

// A transaction that read the doorbell disarmed and commits after the
// reader armed it again rang nothing; the reader must not sleep on the
// doorbell alone before its watermark has passed that transaction (SPEC
// §2.2). The poll is off: sleeping too early loses the change for an hour.
func TestDoorbellArmWaitsForDisarmedWriters(t *testing.T) {
	t.Parallel()
	cluster := storetest.NewCluster(t) // holds a write transaction open
	pool := storetest.Pool(t, cluster.URL)
	b, _ := setupReader(t, pool, hub.ReaderConfig{Node: "n1", PollInterval: time.Hour})
	<-b.listening
	ctx := context.Background()

	// Steady writes until the reader disarmed; then, right after the last
	// of them and before the reader finds itself idle, a transaction
	// writes while the doorbell is still disarmed, and the reader arms
	// while it is open. It must be the last writer: an event held behind
	// it keeps the reader from arming (held back is not idle), and so
	// does the last burst event when its clock is the late transaction's
	// id. Then the late change is still delivered, by the held-back poll,
	// and the case is tried again.
	written, armedWhileOpen := 0, false
	for attempt := 0; !armedWhileOpen; attempt++ {
		require.Less(t, attempt, 20, "the reader never armed while a writer that read it disarmed was open")
		for doorbellArmed(t, pool, "n1") == nil || *doorbellArmed(t, pool, "n1") {
			b.exec(t, `INSERT INTO orders (client, account_id) VALUES ('acme', 'burst')`)
			written++
		}
		late, err := pool.Begin(ctx)
		require.NoError(t, err)
		_, err = late.Exec(ctx, `INSERT INTO orders (client, account_id) VALUES ('acme', 'late')`)
		require.NoError(t, err)
		var armed bool
		require.NoError(t, late.QueryRow(ctx, `SELECT coalesce(bool_or(armed), true) FROM hub.doorbell`).Scan(&armed))
		if armed { // the reader armed first: its arm covers this one; try again
			require.NoError(t, late.Rollback(ctx))
			continue
		}
		// The reader goes idle and arms while the late transaction is open.
		deadline := time.Now().Add(3 * time.Second)
		for time.Now().Before(deadline) && !armedWhileOpen {
			a := doorbellArmed(t, pool, "n1")
			armedWhileOpen = a != nil && *a
			time.Sleep(2 * time.Millisecond) // polling a row the reader changes without telling
		}
		require.NoError(t, late.Commit(ctx))
		written++
		events := b.got.wait(t, written)
		require.Len(t, events, written)
		require.Equal(t, "late", events[len(events)-1].Subject)
		requireStrictOrder(t, events)
	}
}
