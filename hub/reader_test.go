package hub_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
	"golang.org/x/sync/errgroup"

	"github.com/hubdev/hub/hub"
	"github.com/hubdev/hub/hub/hubtest"
	"github.com/hubdev/hub/store"
	"github.com/hubdev/hub/store/storetest"
)

// collector is a reader's consumer that records every event and lets a
// test wait for a count.
type collector struct {
	mu     sync.Mutex
	events []store.Event
	more   chan struct{} // closed and replaced on every batch
}

func newCollector() *collector { return &collector{more: make(chan struct{})} }

func (c *collector) deliver(_ context.Context, batch []store.Event) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.events = append(c.events, batch...)
	close(c.more)
	c.more = make(chan struct{})
	return nil
}

func (c *collector) snapshot() ([]store.Event, <-chan struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]store.Event(nil), c.events...), c.more
}

// wait returns the events once there are at least n.
func (c *collector) wait(t *testing.T, n int) []store.Event {
	t.Helper()
	timeout := time.After(60 * time.Second)
	for {
		events, more := c.snapshot()
		if len(events) >= n {
			return events
		}
		select {
		case <-more:
		case <-timeout:
			t.Fatalf("got %d events, want %d", len(events), n)
		}
	}
}

type readerBundle struct {
	pool      *pgxpool.Pool
	store     *store.Store
	got       *collector
	listening chan struct{}
	backlog   chan store.Backlog
}

func setupReader(t *testing.T, pool *pgxpool.Pool, cfg hub.ReaderConfig) (*readerBundle, *hub.Reader) {
	t.Helper()
	b := &readerBundle{pool: pool, store: store.New(pool), got: newCollector(),
		listening: make(chan struct{}, 10), backlog: make(chan store.Backlog, 1)}
	cfg.Deliver = b.got.deliver
	cfg.Logger = slog.New(slog.NewTextHandler(tWriter{t}, nil))
	cfg.OnListening = func() { b.listening <- struct{}{} }
	cfg.OnBacklog = func(bl store.Backlog) {
		select {
		case b.backlog <- bl:
		default:
		}
	}
	r := hub.NewReader(b.store, cfg)
	runUntilCleanup(t, r.Run)
	return b, r
}

// runUntilCleanup runs a component until the test ends and then checks
// that it stopped cleanly.
func runUntilCleanup(t *testing.T, run func(context.Context) error) { hubtest.Run(t, run) }

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}

func (b *readerBundle) exec(t *testing.T, sql string, args ...any) {
	t.Helper()
	_, err := b.pool.Exec(context.Background(), sql, args...)
	require.NoError(t, err)
}

func requireStrictOrder(t *testing.T, events []store.Event) {
	t.Helper()
	for i := 1; i < len(events); i++ {
		require.True(t, events[i-1].Pos.Less(events[i].Pos), "event %d at %s after %s", i, events[i].Pos, events[i-1].Pos)
	}
}

// A transaction that writes its event first and commits last must not be
// skipped by a reader that has already seen a later commit.
func TestReaderLateCommit(t *testing.T) {
	t.Parallel()
	cluster := storetest.NewCluster(t) // holds a write transaction open
	pool := storetest.Pool(t, cluster.URL)
	b, _ := setupReader(t, pool, hub.ReaderConfig{PollInterval: time.Hour})
	<-b.listening
	ctx := context.Background()

	txA, err := pool.Begin(ctx)
	require.NoError(t, err)
	defer txA.Rollback(ctx)
	_, err = txA.Exec(ctx, `INSERT INTO orders (client, account_id) VALUES ('acme', 'A')`)
	require.NoError(t, err)
	b.exec(t, `INSERT INTO orders (client, account_id) VALUES ('acme', 'B')`) // commits in between

	// The reader sees B's event held back behind A, and delivers nothing.
	// The gauge's look at pg_stat_activity comes about once a second.
	for bl := range b.backlog {
		if bl.HeldBack && bl.OldestWrite > 0 {
			break
		}
	}
	events, _ := b.got.snapshot()
	require.Empty(t, events, "nothing passes the open transaction")

	require.NoError(t, txA.Commit(ctx))
	events = b.got.wait(t, 2)
	require.Len(t, events, 2)
	require.Equal(t, "A", events[0].Subject, "the late commit comes first: it began first")
	require.Equal(t, "B", events[1].Subject)
	requireStrictOrder(t, events)
}

// writeConcurrently runs writers x txs single-row transactions with small
// random delays; each row's subject names it uniquely.
func writeConcurrently(ctx context.Context, pool *pgxpool.Pool, writers, txs int, during func(i int)) error {
	g, ctx := errgroup.WithContext(ctx)
	for w := range writers {
		g.Go(func() error {
			for i := range txs {
				if during != nil && w == 0 {
					during(i)
				}
				time.Sleep(time.Duration(rand.IntN(500)) * time.Microsecond) // spreads commits; not synchronisation
				subject := fmt.Sprintf("w%d-%d", w, i)
				if _, err := pool.Exec(ctx, `INSERT INTO orders (client, account_id) VALUES ('acme', $1)`, subject); err != nil {
					return err
				}
			}
			return nil
		})
	}
	return g.Wait()
}

func requireExactlyOnce(t *testing.T, events []store.Event, writers, txs int) {
	t.Helper()
	require.Len(t, events, writers*txs)
	requireStrictOrder(t, events)
	seen := map[string]bool{}
	for _, e := range events {
		require.False(t, seen[e.Subject], "%s delivered twice", e.Subject)
		seen[e.Subject] = true
	}
	for w := range writers {
		for i := range txs {
			require.True(t, seen[fmt.Sprintf("w%d-%d", w, i)])
		}
	}
}

func TestReaderConcurrentWriters(t *testing.T) {
	t.Parallel()
	pool, _ := storetest.NewPool(t)
	b, _ := setupReader(t, pool, hub.ReaderConfig{PageSize: 100})
	<-b.listening
	require.NoError(t, writeConcurrently(context.Background(), pool, 8, 500, nil))
	requireExactlyOnce(t, b.got.wait(t, 4000), 8, 500)
}

// Losing the LISTEN connection mid-stream loses and repeats nothing: the
// reader reconnects and reads from its position. The poll is off so that
// only the doorbell and the reconnect can wake the reader.
func TestReaderListenerTerminated(t *testing.T) {
	t.Parallel()
	pool, _ := storetest.NewPool(t)
	b, _ := setupReader(t, pool, hub.ReaderConfig{PollInterval: time.Hour})
	<-b.listening
	var dbName string
	require.NoError(t, pool.QueryRow(context.Background(), `SELECT current_database()`).Scan(&dbName))
	kill := func(i int) {
		if i != 150 {
			return
		}
		var n int
		require.NoError(t, pool.QueryRow(context.Background(), `
			SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
			WHERE application_name = $1 AND datname = $2`, store.ListenerApplicationName, dbName).Scan(&n))
		require.Equal(t, 1, n)
	}
	require.NoError(t, writeConcurrently(context.Background(), pool, 4, 300, kill))
	requireExactlyOnce(t, b.got.wait(t, 1200), 4, 300)
	select {
	case <-b.listening:
	default:
		t.Fatal("the listener did not reconnect")
	}
}

func TestReaderResumesFromPosition(t *testing.T) {
	t.Parallel()
	pool, _ := storetest.NewPool(t)
	first, r := setupReader(t, pool, hub.ReaderConfig{})
	for i := range 10 {
		first.exec(t, `INSERT INTO orders (client, account_id) VALUES ('acme', $1)`, fmt.Sprint(i))
	}
	events := first.got.wait(t, 10)
	saved := events[4].Pos
	require.Eventually(t, func() bool { return r.Position() == events[9].Pos }, 10*time.Second, time.Millisecond)

	second, _ := setupReader(t, pool, hub.ReaderConfig{Start: saved})
	second.exec(t, `INSERT INTO orders (client, account_id) VALUES ('acme', 'after')`)
	resumed := second.got.wait(t, 6)
	require.Len(t, resumed, 6)
	require.Equal(t, events[5:], resumed[:5], "continues exactly after the saved position")
	require.Equal(t, "after", resumed[5].Subject)
}

func TestReaderAttachedTable(t *testing.T) {
	t.Parallel()
	pool, _ := storetest.NewPool(t)
	b, _ := setupReader(t, pool, hub.ReaderConfig{})
	b.exec(t, `CREATE TABLE trades (id int PRIMARY KEY, desk text, price numeric)`)
	b.exec(t, `SELECT hub.attach('trades', 'trades', 'desk', NULL, '{INSERT,UPDATE}')`)
	b.exec(t, `INSERT INTO trades VALUES (1, 'acme', 1.5)`)
	b.exec(t, `UPDATE trades SET price = 2`)
	events := b.got.wait(t, 2)
	require.Equal(t, "trades", events[0].Channel)
	require.Equal(t, "acme", events[1].Client)
	var old map[string]any
	require.NoError(t, json.Unmarshal(events[1].Old, &old))
	require.Equal(t, map[string]any{"price": 1.5}, old)
}

func TestRetentionTrimsExpired(t *testing.T) {
	t.Parallel()
	pool, _ := storetest.NewPool(t)
	s := store.New(pool)
	ctx := context.Background()
	_, err := pool.Exec(ctx, `INSERT INTO orders (client) SELECT 'acme' FROM generate_series(1, 25)`)
	require.NoError(t, err)
	_, err = pool.Exec(ctx, `UPDATE hub.events SET created_at = now() - interval '2 hours' WHERE id <= 20`)
	require.NoError(t, err)
	// Retention never passes the watermark, which other tests' transactions
	// may hold back for a moment.
	require.Eventually(t, func() bool {
		bl, err := s.BacklogCheck(ctx)
		return err == nil && !bl.HeldBack
	}, 30*time.Second, 5*time.Millisecond)
	n, err := hub.NewRetention(s, hub.RetentionConfig{Keep: time.Hour, Batch: 7}).Trim(ctx)
	require.NoError(t, err)
	require.EqualValues(t, 20, n, "every expired event, over several batches")
	var left int
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM hub.events`).Scan(&left))
	require.Equal(t, 5, left)
}
