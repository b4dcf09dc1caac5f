package demo

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hubdev/hub/store/storetest"
)

// testLogWriter sends log lines to t.Log, and each one holding match to
// seen (when set).
type testLogWriter struct {
	t     *testing.T
	match string
	seen  chan struct{}
}

func (w testLogWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	if w.seen != nil && strings.Contains(string(p), w.match) {
		select {
		case w.seen <- struct{}{}:
		default:
		}
	}
	return len(p), nil
}

// TestDemoWritesEveryChannel runs the simulator fast until the log holds
// events of every channel it feeds, then stops it.
func TestDemoWritesEveryChannel(t *testing.T) {
	t.Parallel()
	pool, _ := storetest.NewPool(t)
	log := slog.New(slog.NewTextHandler(testLogWriter{t: t}, nil))
	d := newDemo(pool, config{MinInterval: time.Millisecond, MaxInterval: 5 * time.Millisecond, Logger: log})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- d.run(ctx) }()

	// Per channel, the events of client demo (scores is global: no client).
	count := func() map[string]int {
		rows, err := pool.Query(context.Background(), `
			SELECT channel || ':' || op, count(*) FROM hub.events
			WHERE client = $1 OR (channel = 'scores' AND client IS NULL)
			GROUP BY 1`, Client)
		require.NoError(t, err)
		defer rows.Close()
		n := map[string]int{}
		for rows.Next() {
			var k string
			var c int
			require.NoError(t, rows.Scan(&k, &c))
			n[k] = c
		}
		require.NoError(t, rows.Err())
		return n
	}
	want := []string{"orders:INSERT", "orders:UPDATE", "bets:INSERT", "bets:UPDATE", "accounts:UPDATE", "scores:UPDATE"}
	deadline := time.Now().Add(60 * time.Second)
	var got map[string]int
	for {
		got = count()
		missing := 0
		for _, k := range want {
			if got[k] == 0 {
				missing++
			}
		}
		if missing == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		require.NoError(t, err, "the simulator returns nil when its context ends")
	case <-time.After(10 * time.Second):
		t.Fatal("the simulator did not stop")
	}
	t.Logf("events: %v", got)
	for _, k := range want {
		require.Positive(t, got[k], "no %s event for client demo", k)
	}

	// The rows look like the real thing.
	var exchanges, fixtures int
	require.NoError(t, pool.QueryRow(context.Background(), `
		SELECT count(*) FILTER (WHERE exchange NOT IN ('polymarket', 'betfair')),
		       (SELECT count(*) FROM scores WHERE fixture_id !~ '^id1[0-9]{15}$')
		FROM orders`).Scan(&exchanges, &fixtures))
	require.Zero(t, exchanges, "orders go to polymarket or betfair")
	require.Zero(t, fixtures, "fixture ids look like id1000000861624412")
	var filledHedged int
	require.NoError(t, pool.QueryRow(context.Background(), `
		SELECT count(*) FROM bets b JOIN orders o USING (order_id)
		WHERE o.order_status = 'FILLED' AND b.client = 'demo'`).Scan(&filledHedged))
	require.Positive(t, filledHedged, "bets hedge filled orders")
}

// TestDemoRetriesAfterErrors shows a failing write is logged and retried
// rather than ending the simulator: the business tables are missing until
// the test creates them back.
func TestDemoRetriesAfterErrors(t *testing.T) {
	t.Parallel()
	pool, _ := storetest.NewPool(t)
	ctx := context.Background()
	_, err := pool.Exec(ctx, `ALTER TABLE accounts RENAME TO accounts_away`)
	require.NoError(t, err)
	failed := make(chan struct{}, 1)
	log := slog.New(slog.NewTextHandler(testLogWriter{t: t, match: "write failed", seen: failed}, nil))
	d := newDemo(pool, config{MinInterval: time.Millisecond, MaxInterval: 2 * time.Millisecond, RetryInterval: 10 * time.Millisecond, Logger: log})
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- d.run(rctx) }()

	for range 3 { // a few failed attempts, logged
		select {
		case <-failed:
		case err := <-done:
			t.Fatalf("the simulator stopped on a write error: %v", err)
		case <-time.After(30 * time.Second):
			t.Fatal("no failed write was logged")
		}
	}
	_, err = pool.Exec(ctx, `ALTER TABLE accounts_away RENAME TO accounts`)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		var n int
		require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM hub.events WHERE channel = 'accounts'`).Scan(&n))
		return n > 0
	}, 30*time.Second, 20*time.Millisecond)
	cancel()
	require.NoError(t, <-done)
}

// TestRun runs the simulator at its gentle default rate: its first
// write, the seed, comes at once, so a first run has something to show.
func TestRun(t *testing.T) {
	t.Parallel()
	pool, _ := storetest.NewPool(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- Run(ctx, pool, slog.New(slog.NewTextHandler(testLogWriter{t: t}, nil))) }()
	require.Eventually(t, func() bool {
		var n int
		require.NoError(t, pool.QueryRow(context.Background(), `SELECT count(*) FROM hub.events WHERE channel IN ('accounts', 'scores')`).Scan(&n))
		return n >= len(accounts)+pitches
	}, 30*time.Second, 20*time.Millisecond)
	cancel()
	require.NoError(t, <-done)
}

func TestDemoConfigDefaults(t *testing.T) {
	t.Parallel()
	c := config{}.withDefaults()
	require.Equal(t, 500*time.Millisecond, c.MinInterval)
	require.Equal(t, 2*time.Second, c.MaxInterval)
	require.NotNil(t, c.Logger)
	c = config{MinInterval: 3 * time.Second}.withDefaults()
	require.Equal(t, 3*time.Second, c.MaxInterval, "the maximum is never below the minimum")
}
