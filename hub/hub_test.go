package hub_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/hubdev/hub/hub"
	"github.com/hubdev/hub/hub/wire"
	"github.com/hubdev/hub/store"
	"github.com/hubdev/hub/store/storetest"
)

// fakeConn is a transport whose client reads every frame at once, or,
// when stalled, none.
type fakeConn struct {
	sess  *hub.Session
	mu    sync.Mutex
	out   []wire.Event // broadcasts received, decoded
	other []string     // control frames
	code  int
	why   string
	more  chan struct{}
	stall bool
	held  int // frames written while stalled, not yet acknowledged
}

func newFakeConn() *fakeConn { return &fakeConn{more: make(chan struct{})} }

func (c *fakeConn) Send(frames ...[]byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, frame := range frames {
		var f struct {
			Type    string
			ID      string
			Channel string
			Event   string
			Payload json.RawMessage
			Old     json.RawMessage
		}
		if err := json.Unmarshal(frame, &f); err != nil {
			panic(err)
		}
		if f.Type == "broadcast" {
			c.out = append(c.out, wire.Event{Pos: f.ID, Channel: f.Channel, Op: f.Event, Payload: f.Payload, Old: f.Old})
		} else {
			c.other = append(c.other, string(frame))
		}
	}
	close(c.more)
	c.more = make(chan struct{})
	if c.stall {
		c.held += len(frames)
		return
	}
	go c.sess.Sent(len(frames)) // the writer acknowledges from its own goroutine
}

// release lets a stalled client read again: the frames it held are
// written.
func (c *fakeConn) release() {
	c.mu.Lock()
	c.stall = false
	n := c.held
	c.held = 0
	c.mu.Unlock()
	go c.sess.Sent(n)
}

func (c *fakeConn) Close(cl wire.Close) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.code, c.why = cl.Code, cl.Reason
	go c.sess.Gone() // the transport ends after its close frame
	close(c.more)
	c.more = make(chan struct{})
}

func (c *fakeConn) snapshot() ([]wire.Event, int, <-chan struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]wire.Event(nil), c.out...), c.code, c.more
}

// wait returns the broadcasts once there are n, or once the connection is closed.
func (c *fakeConn) wait(t *testing.T, n int) []wire.Event {
	t.Helper()
	timeout := time.After(60 * time.Second)
	for {
		out, code, more := c.snapshot()
		if len(out) >= n || code != 0 {
			return out
		}
		select {
		case <-more:
		case <-timeout:
			t.Fatalf("got %d broadcasts, want %d", len(out), n)
		}
	}
}

// waitClosed returns the close's code and reason once the session closed
// the connection; it fails the test if that takes longer than within.
func (c *fakeConn) waitClosed(t *testing.T, within time.Duration, msg string) (int, string) {
	t.Helper()
	timeout := time.After(within)
	for {
		c.mu.Lock()
		code, why, more := c.code, c.why, c.more
		c.mu.Unlock()
		if code != 0 {
			return code, why
		}
		select {
		case <-more:
		case <-timeout:
			t.Fatalf("not closed within %s: %s", within, msg)
		}
	}
}

type hubBundle struct {
	pool  *pgxpool.Pool
	store *store.Store
	hub   *hub.Hub
}

func setupHub(t *testing.T, cfg hub.Config) *hubBundle {
	t.Helper()
	t.Parallel()
	pool, _ := storetest.NewPool(t)
	b := &hubBundle{pool: pool, store: store.New(pool)}
	b.hub = hub.New(b.store, store.Position{}, cfg)
	r := hub.NewReader(b.store, hub.ReaderConfig{Deliver: b.hub.Deliver, OnChannels: b.hub.RefreshChannels, PollInterval: 100 * time.Millisecond})
	runUntilCleanup(t, r.Run)
	runUntilCleanup(t, b.hub.Run)
	require.Eventually(t, func() bool { return len(b.hub.Channels()) == 5 }, 10*time.Second, 5*time.Millisecond)
	return b
}

func (b *hubBundle) connect(t *testing.T, sub hub.Subscription) (*fakeConn, *hub.Session) {
	t.Helper()
	c := newFakeConn()
	s := b.hub.Connect(hub.ConnectParams{Conn: c, Protocol: hub.ProtocolA, Credits: 8})
	c.sess = s
	t.Cleanup(s.Gone)
	sub.Reply = func(recovered bool) []byte {
		return fmt.Appendf(nil, `{"type":"subscribed","recovered":%t}`, recovered)
	}
	_, err := s.Subscribe(context.Background(), sub)
	require.NoError(t, err)
	return c, s
}

func (b *hubBundle) exec(t *testing.T, sql string, args ...any) {
	t.Helper()
	_, err := b.pool.Exec(context.Background(), sql, args...)
	require.NoError(t, err)
}

func requireInOrderOnce(t *testing.T, got []wire.Event) {
	t.Helper()
	var last store.Position
	for i, e := range got {
		p, err := store.ParsePosition(e.Pos)
		require.NoError(t, err)
		require.True(t, last.Less(p), "broadcast %d at %s after %s", i, p, last)
		last = p
	}
}

// Tenant isolation as a property: random clients, subscriptions and rows;
// every session gets exactly the rows of its client on its channels, and
// every global event on its channels.
func TestTenantIsolation(t *testing.T) {
	b := setupHub(t, hub.Config{})
	rng := rand.New(rand.NewPCG(1, uint64(time.Now().UnixNano())))
	clients := []string{"c0", "c1", "c2", "c3"}
	channels := []string{"orders", "bets", "accounts", "scores", "emergency"}
	type subscriber struct {
		client string
		chans  map[string]bool
		conn   *fakeConn
	}
	var subs []subscriber
	for range 20 {
		sub := hub.Subscription{Client: clients[rng.IntN(len(clients))]}
		chans := map[string]bool{}
		if rng.IntN(3) == 0 {
			sub.All = true
			for _, c := range channels {
				chans[c] = true
			}
		} else {
			for _, c := range channels {
				if rng.IntN(2) == 0 {
					sub.Channels = append(sub.Channels, c)
					chans[c] = true
				}
			}
		}
		conn, _ := b.connect(t, sub)
		subs = append(subs, subscriber{client: sub.Client, chans: chans, conn: conn})
	}
	b.exec(t, `INSERT INTO accounts (account_id, client) SELECT 'acc-' || c, c FROM unnest($1::text[]) c`, clients)
	b.exec(t, `INSERT INTO scores (fixture_id) VALUES ('f1')`)
	type row struct{ channel, client string }
	var rows []row
	for i := range 200 {
		client := clients[rng.IntN(len(clients))]
		switch rng.IntN(5) {
		case 0:
			b.exec(t, `INSERT INTO orders (client, account_id) VALUES ($1, $2)`, client, fmt.Sprint(i))
			rows = append(rows, row{"orders", client})
		case 1:
			b.exec(t, `INSERT INTO bets (client, account_id) VALUES ($1, $2)`, client, fmt.Sprint(i))
			rows = append(rows, row{"bets", client})
		case 2:
			b.exec(t, `UPDATE accounts SET balance = $2 WHERE client = $1`, client, i)
			rows = append(rows, row{"accounts", client})
		case 3:
			b.exec(t, `UPDATE scores SET current_minute = $1`, i)
			rows = append(rows, row{"scores", ""})
		case 4:
			b.exec(t, `UPDATE emergency SET emergency = NOT emergency`)
			rows = append(rows, row{"emergency", ""})
		}
	}
	// A marker every subscriber of scores or emergency sees last.
	b.exec(t, `UPDATE scores SET current_minute = -1`)
	b.exec(t, `UPDATE emergency SET reason = 'end'`)
	rows = append(rows, row{"scores", ""}, row{"emergency", ""})
	for i, s := range subs {
		want := 0
		for _, r := range rows {
			if s.chans[r.channel] && (r.client == "" || r.client == s.client) {
				want++
			}
		}
		got := s.conn.wait(t, want)
		require.Len(t, got, want, "subscriber %d (%s %v)", i, s.client, s.chans)
		requireInOrderOnce(t, got)
		for _, e := range got {
			require.True(t, s.chans[e.Channel])
			var p struct{ Client *string }
			require.NoError(t, json.Unmarshal(e.Payload, &p))
			if p.Client != nil {
				require.Equal(t, s.client, *p.Client, "never another client's row")
			}
		}
	}
}

// A burst far larger than the send buffer reaches a client that reads:
// every event once, in order, no disconnect.
func TestBurstLargerThanBuffer(t *testing.T) {
	b := setupHub(t, hub.Config{SendBuffer: 64, PageSize: 500})
	conn, _ := b.connect(t, hub.Subscription{Client: "acme", Channels: []string{"accounts"}})
	b.exec(t, `INSERT INTO accounts (account_id, client, balance) SELECT 'a' || g, 'acme', 0 FROM generate_series(1, 10000) g`)
	b.exec(t, `UPDATE accounts SET balance = 1`)
	got := conn.wait(t, 10000)
	_, code, _ := conn.snapshot()
	require.Zero(t, code, "no disconnect")
	require.Len(t, got, 10000)
	requireInOrderOnce(t, got)
}

// Resume: the events after since, then live ones, with writes racing the
// replay, without gap or duplicate at the seam.
func TestResumeSince(t *testing.T) {
	b := setupHub(t, hub.Config{SendBuffer: 16, PageSize: 50})
	first, _ := b.connect(t, hub.Subscription{Client: "acme", Channels: []string{"orders"}})
	for i := range 20 {
		b.exec(t, `INSERT INTO orders (client, account_id) VALUES ('acme', $1)`, fmt.Sprint(i))
	}
	seen := first.wait(t, 20)
	since, err := store.ParsePosition(seen[9].Pos)
	require.NoError(t, err)

	done := make(chan struct{})
	go func() { // writes racing the replay
		defer close(done)
		for i := 20; i < 300; i++ {
			if _, err := b.pool.Exec(context.Background(), `INSERT INTO orders (client, account_id) VALUES ('acme', $1)`, fmt.Sprint(i)); err != nil {
				panic(err)
			}
		}
	}()
	second, _ := b.connect(t, hub.Subscription{Client: "acme", Channels: []string{"orders"}, Since: &since})
	<-done
	got := second.wait(t, 290)
	require.Len(t, got, 290)
	requireInOrderOnce(t, got)
	require.Equal(t, seen[10].Pos, got[0].Pos, "starts right after since")
	require.Contains(t, second.other[0], `"recovered":true`)
	all := first.wait(t, 300)
	require.Equal(t, positions(all[10:]), positions(got), "exactly the events a live subscriber saw")
}

func TestResumeUnrecoverable(t *testing.T) {
	b := setupHub(t, hub.Config{})
	b.exec(t, `INSERT INTO orders (client) VALUES ('acme')`)
	require.Eventually(t, func() bool { return b.hub.Stats().Events == 1 }, 10*time.Second, time.Millisecond)
	future := store.Position{Xid: 1 << 40, ID: 1}
	conn, _ := b.connect(t, hub.Subscription{Client: "acme", Channels: []string{"orders"}, Since: &future})
	require.Contains(t, conn.other[0], `"recovered":false`, "a position this database never had")
	b.exec(t, `INSERT INTO orders (client) VALUES ('acme')`)
	require.Len(t, conn.wait(t, 1), 1, "continues live")
}

// A client that stops reading is closed with 1013 and its resume position
// once its oldest unsent event waited MaxLag; resuming from there gives
// every event once. A healthy client on the same hub misses nothing.
func TestSlowConsumer(t *testing.T) {
	b := setupHub(t, hub.Config{SendBuffer: 32, MaxLag: 3 * time.Second})
	healthy, _ := b.connect(t, hub.Subscription{Client: "acme", Channels: []string{"orders"}})
	slow, _ := b.connect(t, hub.Subscription{Client: "acme", Channels: []string{"orders"}})
	b.exec(t, `INSERT INTO orders (client, account_id) VALUES ('acme', 'first')`)
	require.Len(t, slow.wait(t, 1), 1)
	slow.mu.Lock()
	slow.stall = true
	slow.mu.Unlock()
	for i := range 20 {
		b.exec(t, `INSERT INTO orders (client, account_id) SELECT 'acme', $1 || '-' || g FROM generate_series(1, 100) g`, fmt.Sprint(i))
	}
	got := slow.wait(t, 1<<30) // until closed
	_, code, _ := slow.snapshot()
	require.Equal(t, 1013, code)
	slow.mu.Lock()
	why, held := slow.why, slow.held
	slow.mu.Unlock()
	require.LessOrEqual(t, held, 8, "never more frames outstanding than the transport's credits")
	last := got[len(got)-1].Pos
	require.Equal(t, "slow consumer; resume from "+last, why)

	all := healthy.wait(t, 2001)
	require.Len(t, all, 2001, "the healthy client received every event meanwhile")
	since, err := store.ParsePosition(last)
	require.NoError(t, err)
	resumed, _ := b.connect(t, hub.Subscription{Client: "acme", Channels: []string{"orders"}, Since: &since})
	rest := resumed.wait(t, 2001-len(got))
	_, code, _ = resumed.snapshot()
	require.Zero(t, code, "the resumed session reads and stays open")
	joined := append(got, rest...)
	for i := range min(len(all), len(joined)) {
		require.Equal(t, all[i].Pos, joined[i].Pos, "event %d of %d/%d (closed after %d)", i, len(all), len(joined), len(got))
	}
	require.Equal(t, positions(all), positions(joined), "every event exactly once across the resume")
	require.True(t, strings.HasPrefix(why, "slow consumer"))
}

func positions(events []wire.Event) []string {
	out := make([]string, len(events))
	for i, e := range events {
		out[i] = e.Pos
	}
	return out
}

// A node starts at the watermark, a position no event has. A resume on a
// node that has delivered nothing since must still rejoin live delivery
// once it has read the log, not keep reading it.
func TestResumeOnFreshNode(t *testing.T) {
	t.Parallel()
	pool, _ := storetest.NewPool(t)
	st := store.New(pool)
	ctx := context.Background()
	_, err := pool.Exec(ctx, `INSERT INTO orders (client, account_id) VALUES ('acme', 'before')`)
	require.NoError(t, err)
	require.Eventually(t, func() bool { b, err := st.BacklogCheck(ctx); return err == nil && !b.HeldBack }, 30*time.Second, 5*time.Millisecond)
	start, err := st.EventStart(ctx)
	require.NoError(t, err)
	b := &hubBundle{pool: pool, store: st, hub: hub.New(st, start, hub.Config{})}
	r := hub.NewReader(st, hub.ReaderConfig{Start: start, Deliver: b.hub.Deliver, OnChannels: b.hub.RefreshChannels})
	runUntilCleanup(t, r.Run)
	runUntilCleanup(t, b.hub.Run)
	require.NoError(t, b.hub.LoadChannels(ctx))

	since := store.Position{}
	conn, _ := b.connect(t, hub.Subscription{Client: "acme", Channels: []string{"orders"}, Since: &since})
	require.Len(t, conn.wait(t, 1), 1, "the event before the node's start, from the log")
	require.Eventually(t, func() bool { return b.hub.Stats().CatchingUp == 0 }, 10*time.Second, time.Millisecond,
		"back to live delivery")
	b.exec(t, `INSERT INTO orders (client, account_id) VALUES ('acme', 'after')`)
	got := conn.wait(t, 2)
	require.Len(t, got, 2)
	requireInOrderOnce(t, got)
}
