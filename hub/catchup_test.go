package hub_test

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hubdev/hub/hub"
	"github.com/hubdev/hub/hub/wire"
	"github.com/hubdev/hub/store"
	"github.com/hubdev/hub/store/storetest"
)

// countingLog counts the catch-up's reads and the events they return.
type countingLog struct {
	*store.Store
	reads, events atomic.Int64
}

func (l *countingLog) EventsFor(ctx context.Context, f store.EventFilter, maxRows int, maxBytes int64) (store.EventPage, error) {
	page, err := l.Store.EventsFor(ctx, f, maxRows, maxBytes)
	l.reads.Add(1)
	l.events.Add(int64(len(page.Events)))
	return page, err
}

// A quiet client resuming behind 1,000,000 events of another client gets
// its one event at once (issue 12 §5): its catch-up reads its own events,
// not the log. Reading the log in pages and filtering in Go took longer
// than HUB_MAX_LAG, and the client was closed as a slow consumer with the
// position it started from, again on every reconnect.
func TestCatchUpQuietClientBehindMillion(t *testing.T) {
	t.Parallel()
	cluster := storetest.NewCluster(t) // a million-row transaction would stall other tests' readers
	pool := storetest.Pool(t, cluster.URL)
	st := store.New(pool)
	ctx := context.Background()
	since, err := st.EventNewest(ctx)
	require.NoError(t, err)
	for range 10 { // in steps that stay far below the statement timeout
		_, err = pool.Exec(ctx, `INSERT INTO hub.events (channel, op, client, subject, payload)
			SELECT 'orders', 'INSERT', 'acme', 'loud', jsonb_build_object('orderId', g, 'client', 'acme') FROM generate_series(1, 100000) g`)
		require.NoError(t, err)
	}
	_, err = pool.Exec(ctx, `INSERT INTO orders (client, account_id) VALUES ('quiet', 'mine')`)
	require.NoError(t, err)

	// The node starts after the backlog: only the catch-up reads it.
	start, err := st.EventStart(ctx)
	require.NoError(t, err)
	log := &countingLog{Store: st}
	b := &hubBundle{pool: pool, store: st}
	b.hub = hub.New(log, start, hub.Config{MaxLag: time.Second})
	r := hub.NewReader(st, hub.ReaderConfig{Start: start, Deliver: b.hub.Deliver, OnChannels: b.hub.RefreshChannels})
	runUntilCleanup(t, r.Run)
	runUntilCleanup(t, b.hub.Run)
	require.NoError(t, b.hub.LoadChannels(ctx))

	conn, _ := b.connect(t, hub.Subscription{Client: "quiet", Channels: []string{"orders"}, Since: &since})
	got := conn.wait(t, 1)
	_, code, _ := conn.snapshot()
	require.Zero(t, code, "not closed as a slow consumer")
	require.Len(t, got, 1)
	require.Contains(t, string(got[0].Payload), `"quiet"`)
	require.Eventually(t, func() bool { return b.hub.Stats().CatchingUp == 0 }, 10*time.Second, time.Millisecond)
	require.LessOrEqual(t, log.reads.Load(), int64(2), "one read reaches the watermark")
	require.EqualValues(t, 1, log.events.Load(), "only the client's own event is read")
}

// A replay whose events retention deletes while it pages ends with a
// close that says so; the resume it names is answered "recovered":false
// (issue 12 §5), never a silent gap.
func TestReplayTrimmedWhilePaging(t *testing.T) {
	b := setupHub(t, hub.Config{SendBuffer: 16, PageSize: 10})
	b.exec(t, `INSERT INTO orders (client, account_id) SELECT 'acme', 'a' || g FROM generate_series(1, 100) g`)
	require.Eventually(t, func() bool { return b.hub.Stats().Events == 100 }, 10*time.Second, time.Millisecond)

	since := store.Position{}
	c := newFakeConn()
	c.stall = true // takes the first frames, then reads nothing
	s := b.hub.Connect(hub.ConnectParams{Conn: c, Protocol: hub.ProtocolA, Credits: 8})
	c.sess = s
	t.Cleanup(s.Gone)
	_, err := s.Subscribe(context.Background(), hub.Subscription{Client: "acme", Channels: []string{"orders"}, Since: &since,
		Reply: func(recovered bool) []byte { return []byte(`{"type":"subscribed"}`) }})
	require.NoError(t, err)
	c.wait(t, 6) // the reply and 6 events fill the transport's credits; the rest waits in the queue and the log

	n, err := b.store.EventTrim(context.Background(), 0, 1000)
	require.NoError(t, err)
	require.EqualValues(t, 100, n)
	c.release()

	got := c.wait(t, 1<<30) // until closed
	_, code, _ := c.snapshot()
	require.Equal(t, wire.CloseTryAgain, code)
	c.mu.Lock()
	why := c.why
	c.mu.Unlock()
	require.Less(t, len(got), 100, "the trimmed events were not all sent")
	resume, ok := strings.CutPrefix(why, wire.MsgTrimmedPrefix)
	require.True(t, ok, why)
	pos, err := store.ParsePosition(resume)
	require.NoError(t, err)
	require.False(t, pos.Less(store.Position{}))

	again, _ := b.connect(t, hub.Subscription{Client: "acme", Channels: []string{"orders"}, Since: &pos})
	require.Contains(t, again.other[0], `"recovered":false`, "the client learns that it must refetch")
}

// gatedLog holds the first catch-up read until release is closed.
type gatedLog struct {
	*store.Store
	entered, release chan struct{}
	once             sync.Once
}

func (l *gatedLog) EventsFor(ctx context.Context, f store.EventFilter, maxRows int, maxBytes int64) (store.EventPage, error) {
	first := false
	l.once.Do(func() { first = true })
	if first {
		close(l.entered)
		select {
		case <-l.release:
		case <-ctx.Done():
		}
	}
	return l.Store.EventsFor(ctx, f, maxRows, maxBytes)
}

// A catch-up read that finds its start trimmed does not close a session
// that resubscribed while it ran: the new subscription's cursor is read
// instead. Closing it named a position the client no longer asked for,
// and ended a subscription that could be served.
func TestTrimmedReadAfterResubscribe(t *testing.T) {
	t.Parallel()
	pool, _ := storetest.NewPool(t)
	st := store.New(pool)
	ctx := context.Background()
	log := &gatedLog{Store: st, entered: make(chan struct{}), release: make(chan struct{})}
	b := &hubBundle{pool: pool, store: st, hub: hub.New(log, store.Position{}, hub.Config{})}
	r := hub.NewReader(st, hub.ReaderConfig{Deliver: b.hub.Deliver, OnChannels: b.hub.RefreshChannels, PollInterval: 100 * time.Millisecond})
	runUntilCleanup(t, r.Run)
	runUntilCleanup(t, b.hub.Run)
	require.NoError(t, b.hub.LoadChannels(ctx))
	b.exec(t, `INSERT INTO orders (client, account_id) SELECT 'acme', 'a' || g FROM generate_series(1, 5) g`)
	require.Eventually(t, func() bool { return b.hub.Stats().Events == 5 }, 10*time.Second, time.Millisecond)

	since := store.Position{}
	c, s := b.connect(t, hub.Subscription{Client: "acme", Channels: []string{"orders"}, Since: &since})
	<-log.entered // the catch-up reads after since
	n, err := st.EventTrim(ctx, 0, 1000)
	require.NoError(t, err)
	require.EqualValues(t, 5, n)
	horizon, err := st.Horizon(ctx)
	require.NoError(t, err)
	recovered, err := s.Subscribe(ctx, hub.Subscription{Client: "acme", Channels: []string{"orders"}, Since: &horizon,
		Reply: func(bool) []byte { return []byte(`{"type":"subscribed"}`) }})
	require.NoError(t, err)
	require.True(t, recovered)
	close(log.release) // the read of the old cursor finds it trimmed

	require.Eventually(t, func() bool { return b.hub.Stats().CatchingUp == 0 }, 10*time.Second, time.Millisecond)
	b.exec(t, `INSERT INTO orders (client, account_id) VALUES ('acme', 'after')`)
	got := c.wait(t, 1)
	_, code, _ := c.snapshot()
	require.Zero(t, code, "not closed")
	require.Len(t, got, 1)
	require.Contains(t, string(got[0].Payload), `"after"`)
}

// A subscription to no channel (protocol B's, once each of its contracts
// is detached) reads nothing in its catch-up. Its filter once said "every
// channel": the read returned the whole log, all of it then dropped.
func TestCatchUpNoChannelsReadsNothing(t *testing.T) {
	t.Parallel()
	pool, _ := storetest.NewPool(t)
	st := store.New(pool)
	ctx := context.Background()
	log := &countingLog{Store: st}
	b := &hubBundle{pool: pool, store: st, hub: hub.New(log, store.Position{}, hub.Config{})}
	r := hub.NewReader(st, hub.ReaderConfig{Deliver: b.hub.Deliver, OnChannels: b.hub.RefreshChannels, PollInterval: 100 * time.Millisecond})
	runUntilCleanup(t, r.Run)
	runUntilCleanup(t, b.hub.Run)
	require.NoError(t, b.hub.LoadChannels(ctx))
	b.exec(t, `INSERT INTO orders (client, account_id) SELECT 'acme', 'a' || g FROM generate_series(1, 5) g`)
	require.Eventually(t, func() bool { return b.hub.Stats().Events == 5 }, 10*time.Second, time.Millisecond)

	since := store.Position{}
	c, _ := b.connect(t, hub.Subscription{Client: "acme", Since: &since, Match: func(*store.Event) bool { return true }})
	require.Eventually(t, func() bool { return b.hub.Stats().CatchingUp == 0 }, 10*time.Second, time.Millisecond)
	require.Positive(t, log.reads.Load(), "the catch-up read the log")
	require.Zero(t, log.events.Load(), "and found nothing to read")
	got, code, _ := c.snapshot()
	require.Empty(t, got)
	require.Zero(t, code)
}
