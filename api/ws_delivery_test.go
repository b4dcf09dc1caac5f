package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/jackc/pgx/v5"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/hubdev/hub/api"
	"github.com/hubdev/hub/hub"
	"github.com/hubdev/hub/store"
)

// deliveryWait bounds the waits of the delivery tests, which move
// thousands of events on a shared, busy machine.
const deliveryWait = 30 * time.Second

// smallWindow is the receive buffer of a client that stops reading, so
// that the server's writes back up after little data whatever the host's
// TCP autotuning.
const smallWindow = 64 << 10

// TestWSResume: a client that reconnects with since = the last id it
// received gets exactly the events it missed, in order, then live ones
// (SPEC §4.3).
func TestWSResume(t *testing.T) {
	t.Parallel()
	b := setupWS(t, api.Config{})
	c := b.dial(t)
	subscribeSince(t, c, b.key, "", "orders")
	b.insertOrders(t, 5)
	before := readEvents(t, c, "orders", 5)
	require.NoError(t, c.Close())

	b.insertOrders(t, 20)
	c = b.dial(t)
	reply := subscribeSince(t, c, b.key, before[len(before)-1].String(), "orders")
	require.Equal(t, true, reply["recovered"])
	missed := readEvents(t, c, "orders", 20)
	b.insertOrders(t, 3)
	live := readEvents(t, c, "orders", 3)
	requireOpen(t, c) // nothing else was queued before the pong

	got := append(append(before, missed...), live...)
	requireSequence(t, b.eventPositions(t, "orders"), got)
}

// TestWSResumeRacingWrites: with writes racing the disconnect and the
// replay, what the client got before and after the reconnect is every
// event exactly once, in position order.
func TestWSResumeRacingWrites(t *testing.T) {
	t.Parallel()
	b := setupWS(t, api.Config{})
	c := b.dial(t)
	subscribeSince(t, c, b.key, "", "orders")
	b.insertOrders(t, 5)
	before := readEvents(t, c, "orders", 5)

	written := make(chan error, 1)
	go func() { // 40 transactions of 10 rows while the client reconnects
		var err error
		for i := 0; i < 40 && err == nil; i++ {
			_, err = b.pool.Exec(context.Background(), insertOrdersSQL, 10)
		}
		written <- err
	}()
	before = append(before, readEvents(t, c, "orders", 10)...) // some racing ones
	require.NoError(t, c.Close())

	c = b.dial(t)
	reply := subscribeSince(t, c, b.key, before[len(before)-1].String(), "orders")
	require.Equal(t, true, reply["recovered"])
	require.NoError(t, <-written)
	want := b.eventPositions(t, "orders")
	require.Len(t, want, 5+40*10)
	after := readEvents(t, c, "orders", len(want)-len(before))
	requireOpen(t, c)
	requireSequence(t, want, append(before, after...))
}

// TestWSBurst: one transaction of 10,000 events through a send buffer of
// 64 reaches a client that reads, all of them once and in order, without
// a close (SPEC §6: the session continues from the log).
func TestWSBurst(t *testing.T) {
	t.Parallel()
	b := setupWSHub(t, api.Config{}, hub.Config{SendBuffer: 64})
	const n = 10_000
	b.exec(t, `INSERT INTO accounts (account_id, client, balance) SELECT 'acct-' || i, 'acme', 0 FROM generate_series(1, $1::int) i`, n)
	c := b.dial(t)
	subscribeSince(t, c, b.key, "", "accounts")

	b.exec(t, `UPDATE accounts SET balance = balance + 1`)
	got := readEvents(t, c, "accounts", n)
	requireOpen(t, c)
	requireSequence(t, b.eventPositions(t, "accounts"), got)
	require.Zero(t, b.hub.Stats().SlowCloses)

	// The writer sends the frames waiting for a connection with one write.
	resp, err := http.Get(b.base + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	require.NoError(t, err)
	writes := value(t, families, "hub_websocket_writes_total", "ws")
	require.Equal(t, float64(n), value(t, families, "hub_deliveries_total", "ws"))
	require.Less(t, writes, float64(n)/4, "%v writes for %d frames", writes, n)
}

// TestWSSlowConsumer: a client that stops reading is closed with 1013 and
// the position of the last event it received; resuming from it loses
// nothing, and a healthy client of the same key gets every event meanwhile
// (SPEC §6).
func TestWSSlowConsumer(t *testing.T) {
	t.Parallel()
	b := setupWSHub(t,
		api.Config{WriteTimeout: deliveryWait}, // the writer must wait for the slow client to read again
		hub.Config{SendBuffer: 64, MaxLag: 2 * time.Second})
	const txs, rows = 10, 300
	slow := b.dialSmallWindow(t)
	subscribeSince(t, slow, b.key, "", "orders")
	healthy := b.dial(t)
	subscribeSince(t, healthy, b.key, "", "orders")
	type result struct {
		got []store.Position
		err error
	}
	healthyDone := make(chan result, 1)
	go func() {
		got, err := collect(healthy, "orders", txs*rows)
		healthyDone <- result{got, err}
	}()

	for range txs {
		b.insertOrders(t, rows)
	}
	waitSlowCloses(t, b.hub, 1)

	before, err := readUntilError(slow, "orders")
	t.Logf("the slow client got %d of %d events, then %v", len(before), txs*rows, err)
	require.NotEmpty(t, before, "the kernel's buffers held some events")
	var ce *websocket.CloseError
	require.ErrorAs(t, err, &ce)
	require.Equal(t, 1013, ce.Code)
	last := before[len(before)-1].String()
	require.Equal(t, "slow consumer; resume from "+last, ce.Text)
	require.Less(t, len(before), txs*rows, "it was closed before it got everything")

	c := b.dial(t)
	reply := subscribeSince(t, c, b.key, last, "orders")
	require.Equal(t, true, reply["recovered"])
	after := readEvents(t, c, "orders", txs*rows-len(before))
	requireOpen(t, c)
	want := b.eventPositions(t, "orders")
	require.Len(t, want, txs*rows)
	requireSequence(t, want, append(before, after...))

	res := <-healthyDone
	require.NoError(t, res.err)
	requireSequence(t, want, res.got)
	requireOpen(t, healthy)
	require.EqualValues(t, 1, b.hub.Stats().SlowCloses)
}

// TestWSJammedSocket: a write that blocks past the write timeout drops the
// connection without a close frame, and counts as a slow-consumer close
// (SPEC §6).
func TestWSJammedSocket(t *testing.T) {
	t.Parallel()
	b := setupWSHub(t, api.Config{WriteTimeout: 500 * time.Millisecond}, hub.Config{})
	const txs, rows = 4, 10
	c := b.dialSmallWindow(t)
	subscribeSince(t, c, b.key, "", "bets")
	for range txs { // 4 MB, far more than the sockets' buffers hold
		b.exec(t, `INSERT INTO bets (client, account_id, sent_data)
			SELECT 'acme', 'A', jsonb_build_object('pad', repeat('x', 100000)) FROM generate_series(1, $1::int)`, rows)
	}
	waitSlowCloses(t, b.hub, 1)

	got, err := readUntilError(c, "bets")
	t.Logf("the jammed client got %d of %d events, then %v", len(got), txs*rows, err)
	require.Less(t, len(got), txs*rows)
	var ce *websocket.CloseError
	if errors.As(err, &ce) { // no close frame passed: gorilla reports the EOF as 1006
		require.Equal(t, websocket.CloseAbnormalClosure, ce.Code, "%v", err)
	}
	require.Eventually(t, func() bool { return b.hub.Stats().Sessions == 0 }, deliveryWait, 10*time.Millisecond)
	require.EqualValues(t, 1, b.hub.Stats().SlowCloses)
}

// TestWSConnectCyclesLeak: connections that come and go leave no goroutine
// behind. Not parallel: goleak sees every goroutine of the binary.
func TestWSConnectCyclesLeak(t *testing.T) {
	b := setupWS(t, api.Config{})
	_, key, err := b.store.APIKeyCreate(context.Background(), store.APIKeyCreateParams{Client: "acme", MaxConnections: 100})
	require.NoError(t, err)
	snapshot := goleak.IgnoreCurrent()
	for range 50 {
		c := b.dial(t)
		subscribeSince(t, c, key, "", "orders")
		b.insertOrders(t, 1)
		readEvents(t, c, "orders", 1)
		require.NoError(t, c.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, "")))
		require.NoError(t, c.Close())
	}
	require.Eventually(t, func() bool {
		var leases int
		err := b.pool.QueryRow(context.Background(), `SELECT count(*) FROM hub.leases`).Scan(&leases)
		return err == nil && leases == 0 && b.hub.Stats().Sessions == 0
	}, deliveryWait, 10*time.Millisecond)
	goleak.VerifyNone(t, snapshot)
}

const insertOrdersSQL = `INSERT INTO orders (client, account_id, order_status)
	SELECT 'acme', 'A' || i, 'open' FROM generate_series(1, $1::int) i`

// insertOrders writes n orders of acme in one transaction.
func (b *wsBundle) insertOrders(t *testing.T, n int) {
	t.Helper()
	b.exec(t, insertOrdersSQL, n)
}

// eventPositions lists the positions of acme's events on channel, in
// position order: what a subscriber must receive.
func (b *wsBundle) eventPositions(t *testing.T, channel string) []store.Position {
	t.Helper()
	rows, err := b.pool.Query(context.Background(),
		`SELECT xid::text || '-' || id FROM hub.events WHERE channel = $1 AND client = 'acme' ORDER BY xid, id`, channel)
	require.NoError(t, err)
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	ps := make([]store.Position, len(ids))
	for i, id := range ids {
		ps[i], err = store.ParsePosition(id)
		require.NoError(t, err)
	}
	return ps
}

// dialSmallWindow dials with a small receive buffer (smallWindow).
func (b *wsBundle) dialSmallWindow(t *testing.T) *websocket.Conn {
	t.Helper()
	d := websocket.Dialer{NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		if err := c.(*net.TCPConn).SetReadBuffer(smallWindow); err != nil {
			c.Close()
			return nil, err
		}
		return c, nil
	}}
	c, resp, err := d.Dial(b.url, nil)
	require.NoError(t, err)
	resp.Body.Close()
	t.Cleanup(func() { c.Close() })
	return c
}

// subscribeSince subscribes c to channels, after since unless it is "",
// and returns the reply.
func subscribeSince(t *testing.T, c *websocket.Conn, key, since string, channels ...string) map[string]any {
	t.Helper()
	req := map[string]any{"type": "subscribe", "apiKey": key, "channels": channels}
	if since != "" {
		req["since"] = since
	}
	f, err := json.Marshal(req)
	require.NoError(t, err)
	send(t, c, string(f))
	reply := read(t, c)
	require.Equal(t, "subscribed", reply["type"], "%v", reply)
	return reply
}

// waitSlowCloses waits until the hub has closed n slow consumers.
func waitSlowCloses(t *testing.T, h *hub.Hub, n int64) {
	t.Helper()
	require.Eventually(t, func() bool { return h.Stats().SlowCloses >= n }, deliveryWait, 10*time.Millisecond)
	require.Equal(t, n, h.Stats().SlowCloses)
}

// readEvents reads n broadcasts of channel and returns their positions.
func readEvents(t *testing.T, c *websocket.Conn, channel string, n int) []store.Position {
	t.Helper()
	got, err := collect(c, channel, n)
	require.NoError(t, err)
	return got
}

// collect reads n broadcasts of channel, skipping heartbeats.
func collect(c *websocket.Conn, channel string, n int) ([]store.Position, error) {
	got := make([]store.Position, 0, n)
	for len(got) < n {
		p, err := nextEvent(c, channel)
		if err != nil {
			return got, fmt.Errorf("after %d of %d events: %w", len(got), n, err)
		}
		got = append(got, p)
	}
	return got, nil
}

// readUntilError reads broadcasts of channel until the connection fails,
// and returns them with the error that ended it.
func readUntilError(c *websocket.Conn, channel string) ([]store.Position, error) {
	var got []store.Position
	for {
		p, err := nextEvent(c, channel)
		if err != nil {
			return got, err
		}
		got = append(got, p)
	}
}

// errNotBroadcast is returned by nextEvent for any frame but a broadcast
// or a heartbeat.
var errNotBroadcast = errors.New("unexpected frame")

// nextEvent reads the next broadcast, which must be of channel, and
// returns its position.
func nextEvent(c *websocket.Conn, channel string) (store.Position, error) {
	for {
		if err := c.SetReadDeadline(time.Now().Add(deliveryWait)); err != nil {
			return store.Position{}, err
		}
		_, data, err := c.ReadMessage()
		if err != nil {
			return store.Position{}, err
		}
		var f struct{ Type, ID, Channel string }
		if err := json.Unmarshal(data, &f); err != nil {
			return store.Position{}, fmt.Errorf("%w: %s", err, data)
		}
		switch {
		case f.Type == "heartbeat":
			continue
		case f.Type != "broadcast" || f.Channel != channel:
			return store.Position{}, fmt.Errorf("%w: %s", errNotBroadcast, data)
		}
		return store.ParsePosition(f.ID)
	}
}

// requireSequence checks that got is want, naming the first difference
// rather than printing thousands of positions.
func requireSequence(t *testing.T, want, got []store.Position) {
	t.Helper()
	for i := range min(len(want), len(got)) {
		if want[i] != got[i] {
			t.Fatalf("event %d of %d: got %s, want %s (got %d events)", i, len(want), got[i], want[i], len(got))
		}
	}
	require.Len(t, got, len(want), "events received")
}
