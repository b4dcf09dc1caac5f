package hub_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
	"golang.org/x/sync/errgroup"

	"github.com/hubdev/hub/hub"
	"github.com/hubdev/hub/hub/wire"
	"github.com/hubdev/hub/store"
	"github.com/hubdev/hub/store/storetest"
)

// setupPrivateHub is setupHub on a cluster of the test's own: these tests
// hold write transactions open, which would stall the readers of every
// other test on a shared cluster (SPEC §2.3).
func setupPrivateHub(t *testing.T, cfg hub.Config) *hubBundle {
	t.Helper()
	t.Parallel()
	cluster := storetest.NewCluster(t)
	pool := storetest.Pool(t, cluster.URL)
	b := &hubBundle{pool: pool, store: store.New(pool)}
	b.hub = hub.New(b.store, store.Position{}, cfg)
	r := hub.NewReader(b.store, hub.ReaderConfig{Deliver: b.hub.Deliver, OnChannels: b.hub.RefreshChannels, PollInterval: 100 * time.Millisecond})
	runUntilCleanup(t, r.Run)
	runUntilCleanup(t, b.hub.Run)
	require.NoError(t, b.hub.LoadChannels(context.Background()))
	return b
}

// rowState is a subscriber's view of the rows: the last payload it
// received for each row key.
type rowState map[string]map[string]any

// applyInOrder replays broadcasts the way a dashboard does, in arrival
// order, and checks that positions strictly increase and that each
// update's previous values are the values the subscriber holds: a change
// delivered out of commit order breaks that chain, even when a later
// change hides it from the final state.
func applyInOrder(t *testing.T, got []wire.Event) rowState {
	t.Helper()
	requireInOrderOnce(t, got)
	state := rowState{}
	for _, e := range got {
		var p, old map[string]any
		require.NoError(t, json.Unmarshal(e.Payload, &p))
		key := rowKey(e.Channel, p)
		if e.Op == "UPDATE" && state[key] != nil {
			require.NoError(t, json.Unmarshal(e.Old, &old))
			for col, v := range old {
				require.Equal(t, state[key][col], v, "%s at %s: its old %s is not what came before it", key, e.Pos, col)
			}
		}
		state[key] = p
	}
	return state
}

func rowKey(channel string, p map[string]any) string {
	switch channel {
	case "orders":
		return fmt.Sprintf("orders/%v", p["orderId"])
	case "accounts":
		return fmt.Sprintf("accounts/%v", p["accountId"])
	}
	return channel
}

// waitMarker returns a subscriber's broadcasts up to and including the
// order with account_id 'END', which the test writes last.
func waitMarker(t *testing.T, c *fakeConn) []wire.Event {
	t.Helper()
	deadline := time.After(60 * time.Second)
	for {
		out, code, more := c.snapshot()
		require.Zero(t, code, "subscriber closed")
		for i, e := range out {
			var p struct{ AccountID string }
			require.NoError(t, json.Unmarshal(e.Payload, &p))
			if e.Channel == "orders" && p.AccountID == "END" {
				return out[:i+1]
			}
		}
		select {
		case <-more:
		case <-deadline:
			t.Fatalf("the marker did not arrive; %d broadcasts", len(out))
		}
	}
}

func (b *hubBundle) orderStatus(t *testing.T, id int) string {
	t.Helper()
	var s string
	require.NoError(t, b.pool.QueryRow(context.Background(), `SELECT order_status FROM orders WHERE order_id = $1`, id).Scan(&s))
	return s
}

func begin(t *testing.T, pool *pgxpool.Pool) pgx.Tx {
	t.Helper()
	tx, err := pool.Begin(context.Background())
	require.NoError(t, err)
	t.Cleanup(func() { _ = tx.Rollback(context.Background()) })
	return tx
}

func txExec(t *testing.T, tx pgx.Tx, sql string, args ...any) {
	t.Helper()
	_, err := tx.Exec(context.Background(), sql, args...)
	require.NoError(t, err)
}

// interleave is the reproduction: T1 takes its transaction id
// first (it inserts order 8), T2 changes order 7 and commits, then T1
// changes order 7 and commits.
func (b *hubBundle) interleave(t *testing.T) {
	t.Helper()
	t1 := begin(t, b.pool)
	txExec(t, t1, `INSERT INTO orders (order_id, client, order_status) VALUES (8, 'acme', 'NEW')`)
	t2 := begin(t, b.pool)
	txExec(t, t2, `UPDATE orders SET order_status = 'PARTIALLY_FILLED' WHERE order_id = 7`)
	require.NoError(t, t2.Commit(context.Background()))
	txExec(t, t1, `UPDATE orders SET order_status = 'FILLED' WHERE order_id = 7`)
	require.NoError(t, t1.Commit(context.Background()))
}

// The reproduction (SPEC §2.3 "Positions follow commits"): T1 takes
// its transaction id first, T2 changes order 7 and commits, then T1 changes
// order 7 and commits. The table holds T1's version, and so must every
// subscriber that applies changes in arrival order.
func TestCommitOrderOneRow(t *testing.T) {
	b := setupPrivateHub(t, hub.Config{})
	conn, _ := b.connect(t, hub.Subscription{Client: "acme", Channels: []string{"orders"}})
	b.exec(t, `INSERT INTO orders (order_id, client, order_status) VALUES (7, 'acme', 'NEW')`)

	b.interleave(t)
	b.exec(t, `INSERT INTO orders (client, account_id) VALUES ('acme', 'END')`)

	state := applyInOrder(t, waitMarker(t, conn))
	require.Equal(t, "FILLED", b.orderStatus(t, 7))
	require.Equal(t, "FILLED", state["orders/7"]["orderStatus"], "the subscriber shows what the table holds")
}

// An event whose clock is a transaction id no transaction has taken yet
// (T1 wrote after T2, which took a later id, committed) is still
// delivered when nothing else is written: the reader does not wait for
// some later writer to pass the clock.
func TestCommitOrderIdle(t *testing.T) {
	b := setupPrivateHub(t, hub.Config{})
	conn, _ := b.connect(t, hub.Subscription{Client: "acme", Channels: []string{"orders"}})
	b.exec(t, `INSERT INTO orders (order_id, client, order_status) VALUES (7, 'acme', 'NEW')`)

	b.interleave(t)

	got := conn.wait(t, 4)
	require.Len(t, got, 4)
	state := applyInOrder(t, got)
	require.Equal(t, "FILLED", state["orders/7"]["orderStatus"])
}

// The same, with T1's UPDATE waiting on T2's row lock: the trigger's
// insert runs after the wait, with a fresh snapshot.
func TestCommitOrderLockWait(t *testing.T) {
	b := setupPrivateHub(t, hub.Config{})
	conn, _ := b.connect(t, hub.Subscription{Client: "acme", Channels: []string{"orders"}})
	b.exec(t, `INSERT INTO orders (order_id, client, order_status) VALUES (7, 'acme', 'NEW')`)
	ctx := context.Background()

	t1 := begin(t, b.pool)
	txExec(t, t1, `INSERT INTO orders (order_id, client, order_status) VALUES (8, 'acme', 'NEW')`)
	var t1pid int
	require.NoError(t, t1.QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&t1pid))
	t2 := begin(t, b.pool)
	txExec(t, t2, `UPDATE orders SET order_status = 'PARTIALLY_FILLED' WHERE order_id = 7`)

	updated := make(chan error, 1)
	go func() {
		_, err := t1.Exec(ctx, `UPDATE orders SET order_status = 'FILLED' WHERE order_id = 7`)
		updated <- err
	}()
	require.Eventually(t, func() bool { // T1 waits for T2's row lock
		var waiting bool
		err := b.pool.QueryRow(ctx, `SELECT coalesce(wait_event_type = 'Lock', false) FROM pg_stat_activity WHERE pid = $1`, t1pid).Scan(&waiting)
		return err == nil && waiting
	}, 10*time.Second, time.Millisecond)
	require.NoError(t, t2.Commit(ctx))
	require.NoError(t, <-updated)
	require.NoError(t, t1.Commit(ctx))
	b.exec(t, `INSERT INTO orders (client, account_id) VALUES ('acme', 'END')`)

	state := applyInOrder(t, waitMarker(t, conn))
	require.Equal(t, "FILLED", b.orderStatus(t, 7))
	require.Equal(t, "FILLED", state["orders/7"]["orderStatus"])
}

// A change made after reading another transaction's committed change comes
// after it: T2 changes an account and commits, T1 (which took its id
// earlier) reads the account and then changes an order.
func TestCommitOrderAcrossRows(t *testing.T) {
	b := setupPrivateHub(t, hub.Config{})
	conn, _ := b.connect(t, hub.Subscription{Client: "acme", All: true})
	b.exec(t, `INSERT INTO accounts (account_id, client, balance) VALUES ('A', 'acme', 100)`)
	b.exec(t, `INSERT INTO orders (order_id, client, order_status) VALUES (7, 'acme', 'NEW')`)
	ctx := context.Background()

	t1 := begin(t, b.pool)
	txExec(t, t1, `INSERT INTO orders (order_id, client, order_status) VALUES (8, 'acme', 'NEW')`)
	t2 := begin(t, b.pool)
	txExec(t, t2, `UPDATE accounts SET balance = 50 WHERE account_id = 'A'`)
	require.NoError(t, t2.Commit(ctx))
	var balance int
	require.NoError(t, t1.QueryRow(ctx, `SELECT balance FROM accounts WHERE account_id = 'A'`).Scan(&balance))
	require.Equal(t, 50, balance)
	txExec(t, t1, `UPDATE orders SET order_status = 'REJECTED_LOW_BALANCE' WHERE order_id = 7`)
	require.NoError(t, t1.Commit(ctx))
	b.exec(t, `INSERT INTO orders (client, account_id) VALUES ('acme', 'END')`)

	got := waitMarker(t, conn)
	requireInOrderOnce(t, got)
	account, order := -1, -1
	for i, e := range got {
		switch {
		case e.Channel == "accounts":
			account = i
		case e.Channel == "orders" && e.Op == "UPDATE":
			order = i
		}
	}
	require.NotEqual(t, -1, account)
	require.NotEqual(t, -1, order)
	require.Less(t, account, order, "the order's change was made after reading the account's: it comes after it")
}

// Commit order as a property: writers run random short transactions over
// a few rows (some wait between statements, some roll back); every
// subscriber's last payload of every row equals the table, and the
// positions it received strictly increase.
func TestCommitOrderProperty(t *testing.T) {
	b := setupPrivateHub(t, hub.Config{SendBuffer: 4096})
	ctx := context.Background()
	const orders, accounts = 4, 2
	b.exec(t, `INSERT INTO orders (order_id, client, order_status) SELECT g, 'acme', 'NEW' FROM generate_series(1, $1::int) g`, orders)
	b.exec(t, `INSERT INTO accounts (account_id, client, balance) SELECT 'a' || g, 'acme', 0 FROM generate_series(1, $1::int) g`, accounts)
	all, _ := b.connect(t, hub.Subscription{Client: "acme", All: true})
	ordersOnly, _ := b.connect(t, hub.Subscription{Client: "acme", Channels: []string{"orders"}})

	const writers, txs = 6, 60
	g, gctx := errgroup.WithContext(ctx)
	for w := range writers {
		rng := rand.New(rand.NewPCG(uint64(w), uint64(time.Now().UnixNano())))
		g.Go(func() error {
			for i := range txs {
				if err := randomTx(gctx, b.pool, rng, fmt.Sprintf("w%d-%d", w, i), orders, accounts); err != nil {
					return err
				}
			}
			return nil
		})
	}
	require.NoError(t, g.Wait())
	b.exec(t, `INSERT INTO orders (order_id, client, account_id) VALUES (1000, 'acme', 'END')`)

	want := rowState{}
	rows, err := b.pool.Query(ctx, `SELECT order_id, order_status FROM orders WHERE order_id <= $1`, orders)
	require.NoError(t, err)
	for rows.Next() {
		var id int
		var status string
		require.NoError(t, rows.Scan(&id, &status))
		want[fmt.Sprintf("orders/%d", id)] = map[string]any{"orderStatus": status}
	}
	require.NoError(t, rows.Err())
	rows, err = b.pool.Query(ctx, `SELECT account_id, status FROM accounts`)
	require.NoError(t, err)
	for rows.Next() {
		var id string
		var status *string
		require.NoError(t, rows.Scan(&id, &status))
		if status != nil {
			want["accounts/"+id] = map[string]any{"status": *status}
		}
	}
	require.NoError(t, rows.Err())

	for name, c := range map[string]*fakeConn{"all": all, "orders": ordersOnly} {
		state := applyInOrder(t, waitMarker(t, c))
		for key, row := range want {
			if name == "orders" && !strings.HasPrefix(key, "orders/") {
				continue
			}
			for col, v := range row {
				if v == "NEW" {
					continue // never changed
				}
				require.Equal(t, v, state[key][col], "subscriber %s, row %s", name, key)
			}
		}
	}
}

// randomTx updates one to three random rows with a unique value, mostly
// after taking its transaction id early (as a writer that did other work
// first), sometimes waiting between statements, and commits or (one in
// five) rolls back. Rows are locked in one global order, so writers wait
// for each other but never deadlock.
func randomTx(ctx context.Context, pool *pgxpool.Pool, rng *rand.Rand, value string, orders, accounts int) error {
	rows := rng.Perm(orders + accounts)[:1+rng.IntN(3)]
	slices.Sort(rows)
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if rng.IntN(4) != 0 {
			if _, err := tx.Exec(ctx, `INSERT INTO bets (client, account_id) VALUES ('acme', $1)`, value); err != nil {
				return err
			}
		}
		for _, r := range rows {
			if rng.IntN(2) == 0 {
				time.Sleep(time.Duration(rng.IntN(2000)) * time.Microsecond) // widens the interleavings; not synchronisation
			}
			var err error
			if r < orders {
				_, err = tx.Exec(ctx, `UPDATE orders SET order_status = $1 WHERE order_id = $2`, value, 1+r)
			} else {
				_, err = tx.Exec(ctx, `UPDATE accounts SET status = $1 WHERE account_id = 'a' || $2::int`, value, 1+r-orders)
			}
			if err != nil {
				return err
			}
		}
		if rng.IntN(5) == 0 {
			return errRollback
		}
		return nil
	})
	if errors.Is(err, errRollback) {
		return nil
	}
	return err
}

var errRollback = errors.New("rolled back on purpose")
