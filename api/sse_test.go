package api

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/hubdev/hub/hub"
	"github.com/hubdev/hub/hub/hubtest"
	"github.com/hubdev/hub/hub/wire"
	"github.com/hubdev/hub/store"
)

// sseWait bounds every wait for an event; tests wait on events, not time.
const sseWait = 10 * time.Second

const sseNode = "node-sse"

type sseBundle struct {
	pool  *pgxpool.Pool
	store *store.Store
	hub   *hub.Hub
	srv   *httptest.Server
	key   string // client acme's key
}

// setupSSE runs a reader, a hub, a node and the HTTP API with the SSE
// routes on a fresh database, with a client "acme" and one of its keys.
// keepAlive, when set, replaces the 15 s keep-alive interval.
func setupSSE(t *testing.T, keepAlive time.Duration) *sseBundle {
	t.Helper()
	env := hubtest.Start(t, hubtest.Options{NodeID: sseNode})
	b := &sseBundle{pool: env.Pool, store: env.Store, hub: env.Hub}
	cfg := Config{
		Ready: func(context.Context) error { return nil },
		Hub:   env.Hub, Store: env.Store, Leases: env.Node, Logger: env.Log, Conns: &Conns{},
	}
	e := New(cfg)
	if keepAlive > 0 { // a handler of its own, with the shorter keep-alive, in front of New's
		s := newSSE(cfg.withDefaults())
		s.keepAlive = keepAlive
		e.GET("/sse/subscribe", s.handle)
		e.POST("/sse/subscribe", s.handle)
	}
	b.srv = httptest.NewServer(e)
	t.Cleanup(b.srv.Close)
	t.Cleanup(func() { // runs before srv.Close, after the streams ended
		ctx, cancel := context.WithTimeout(context.Background(), sseWait)
		defer cancel()
		require.NoError(t, cfg.Conns.Wait(ctx))
	})
	b.key = env.Key(t, "acme", 0)
	return b
}

func (b *sseBundle) exec(t *testing.T, sql string, args ...any) {
	t.Helper()
	_, err := b.pool.Exec(context.Background(), sql, args...)
	require.NoError(t, err)
}

// newKey creates another key of client.
func (b *sseBundle) newKey(t *testing.T, client string, maxConns int) (store.APIKey, string) {
	t.Helper()
	k, key, err := b.store.APIKeyCreate(context.Background(), store.APIKeyCreateParams{Client: client, MaxConnections: maxConns})
	require.NoError(t, err)
	return k, key
}

// sseEvent is one dispatched event, or a comment line.
type sseEvent struct {
	id, event, data string
	comment         string
}

// sseClient reads one event stream.
type sseClient struct {
	events chan sseEvent // closed when the stream ends
	cancel context.CancelFunc
}

// get opens GET /sse/subscribe with the query and headers given.
func (b *sseBundle) get(t *testing.T, query url.Values, h http.Header) *sseClient {
	t.Helper()
	return b.open(t, http.MethodGet, query, h, "")
}

// post opens POST /sse/subscribe with the JSON body given.
func (b *sseBundle) post(t *testing.T, h http.Header, body string) *sseClient {
	t.Helper()
	return b.open(t, http.MethodPost, nil, h, body)
}

func (b *sseBundle) open(t *testing.T, method string, query url.Values, h http.Header, body string) *sseClient {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	u := b.srv.URL + "/sse/subscribe"
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, strings.NewReader(body))
	require.NoError(t, err)
	for k, v := range h {
		req.Header[k] = v
	}
	if method == http.MethodPost {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := b.srv.Client().Do(req)
	if err != nil {
		cancel()
		require.NoError(t, err)
	}
	c := &sseClient{events: make(chan sseEvent, 64), cancel: cancel}
	done := make(chan struct{})
	t.Cleanup(func() {
		cancel()
		<-done
	})
	go func() { // ends when the stream does, or at cleanup
		defer close(done)
		defer resp.Body.Close()
		parseSSE(ctx, bufio.NewScanner(resp.Body), c.events)
	}()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "text/event-stream", resp.Header.Get("Content-Type"))
	require.Equal(t, "no-cache", resp.Header.Get("Cache-Control"))
	require.Equal(t, "no", resp.Header.Get("X-Accel-Buffering"))
	return c
}

// parseSSE sends the stream's events and comments to out, then closes it.
func parseSSE(ctx context.Context, sc *bufio.Scanner, out chan<- sseEvent) {
	defer close(out)
	send := func(e sseEvent) bool {
		select {
		case out <- e:
			return true
		case <-ctx.Done():
			return false
		}
	}
	var e sseEvent
	var fields bool
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			if fields && !send(e) {
				return
			}
			e, fields = sseEvent{}, false
			continue
		}
		name, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch name {
		case "":
			if !send(sseEvent{comment: value}) {
				return
			}
			continue
		case "id":
			e.id = value
		case "event":
			e.event = value
		case "data":
			e.data = value
		}
		fields = true
	}
}

// nextAny returns the next event or comment.
func (c *sseClient) nextAny(t *testing.T) sseEvent {
	t.Helper()
	select {
	case e, ok := <-c.events:
		require.True(t, ok, "the stream ended")
		return e
	case <-time.After(sseWait):
		t.Fatal("no event")
	}
	return sseEvent{}
}

// next returns the next event, skipping comments.
func (c *sseClient) next(t *testing.T) sseEvent {
	t.Helper()
	for {
		if e := c.nextAny(t); e.comment == "" {
			return e
		}
	}
}

// requireEnd checks that the stream ends with nothing but comments first.
func (c *sseClient) requireEnd(t *testing.T) {
	t.Helper()
	deadline := time.After(sseWait)
	for {
		select {
		case e, ok := <-c.events:
			if !ok {
				return
			}
			require.NotEmpty(t, e.comment, "event %+v before the end", e)
		case <-deadline:
			t.Fatal("the stream did not end")
		}
	}
}

// requireError checks the error event and the end of the stream.
func (c *sseClient) requireError(t *testing.T, msg string, code int) {
	t.Helper()
	quoted, _ := json.Marshal(msg)
	want := `{"message":` + string(quoted) + `,"code":` + strconv.Itoa(code) + `}`
	require.Equal(t, sseEvent{event: "error", data: want}, c.next(t))
	c.requireEnd(t)
}

func connectedData(channels []string, recovered ...bool) string {
	m := map[string]any{"node_id": sseNode, "subscriptionId": 1, "channels": channels}
	if len(recovered) > 0 {
		m["recovered"] = recovered[0]
	}
	data, _ := json.Marshal(m)
	return string(data)
}

// requireConnected checks the connected event; its keys come in the
// order the hub writes them, so its data is compared as JSON.
func (c *sseClient) requireConnected(t *testing.T, channels []string, recovered ...bool) {
	t.Helper()
	e := c.next(t)
	require.Equal(t, "connected", e.event, "%+v", e)
	require.Empty(t, e.id)
	require.JSONEq(t, connectedData(channels, recovered...), e.data)
}

// broadcast returns the next event, which must be a broadcast.
func (c *sseClient) broadcast(t *testing.T) sseEvent {
	t.Helper()
	e := c.next(t)
	require.Equal(t, "broadcast", e.event, "%+v", e)
	require.NotEmpty(t, e.id)
	return e
}

// lastEvent is the newest event of channel as the log holds it: its
// position and the SSE data the hub must send for it.
func (b *sseBundle) lastEvent(t *testing.T, channel string) (pos, data string) {
	t.Helper()
	var id int64
	require.NoError(t, b.pool.QueryRow(context.Background(),
		`SELECT id FROM hub.events WHERE channel = $1 ORDER BY xid DESC, id DESC LIMIT 1`, channel).Scan(&id))
	e := loggedEvent(t, b.store, id)
	data = `{"channel":"` + channel + `","event":"` + e.Op + `","payload":` + string(e.Payload)
	if e.Old != nil {
		data += `,"old":` + string(e.Old)
	}
	return e.Pos.String(), data + "}"
}

func keyHeader(key string) http.Header { return http.Header{"X-Api-Key": {key}} }

func channelsQuery(channels string) url.Values { return url.Values{"channels": {channels}} }

func TestSSEConnectedAndBroadcast(t *testing.T) {
	t.Parallel()
	b := setupSSE(t, 0)
	c := b.get(t, channelsQuery("orders"), keyHeader(b.key))
	c.requireConnected(t, []string{"orders"})

	var protocol string
	require.NoError(t, b.pool.QueryRow(context.Background(), `SELECT protocol FROM hub.leases`).Scan(&protocol))
	require.Equal(t, "sse", protocol)

	b.exec(t, `INSERT INTO orders (client, account_id, order_status) VALUES ('acme', 'A', 'open')`)
	pos, data := b.lastEvent(t, "orders")
	e := c.broadcast(t)
	require.Equal(t, sseEvent{id: pos, event: "broadcast", data: data}, e)
	require.NotContains(t, e.data, `"old"`)

	b.exec(t, `UPDATE orders SET order_status = 'filled'`)
	pos, data = b.lastEvent(t, "orders")
	e = c.broadcast(t)
	require.Equal(t, sseEvent{id: pos, event: "broadcast", data: data}, e)
	var m map[string]any
	require.NoError(t, json.Unmarshal([]byte(e.data), &m))
	require.Equal(t, map[string]any{"orderStatus": "open"}, m["old"])
}

func TestSSEAllChannels(t *testing.T) {
	t.Parallel()
	b := setupSSE(t, 0)
	c := b.get(t, nil, keyHeader(b.key))
	c.requireConnected(t, []string{"accounts", "bets", "emergency", "orders", "scores"})
}

func TestSSERefused(t *testing.T) {
	t.Parallel()
	b := setupSSE(t, 0)
	ctx := context.Background()
	_, err := b.store.ClientCreate(ctx, "gone")
	require.NoError(t, err)
	_, inactiveKey := b.newKey(t, "gone", 0)
	_, err = b.store.ClientSetActive(ctx, "gone", false)
	require.NoError(t, err)
	revoked, revokedKey := b.newKey(t, "acme", 0)
	_, err = b.store.APIKeyRevoke(ctx, revoked.ID)
	require.NoError(t, err)
	_, limitedKey := b.newKey(t, "acme", 1)
	b.get(t, nil, keyHeader(limitedKey)).requireConnected(t, b.hub.Channels())

	tests := []struct {
		name   string
		method string
		query  url.Values
		header http.Header
		body   string
		msg    string
		code   int
	}{
		{name: "no key", msg: "apiKey required"},
		{name: "empty bearer", header: http.Header{"Authorization": {"Bearer "}}, msg: "apiKey required"},
		{name: "key format", header: keyHeader("nope"), msg: "Invalid apiKey format"},
		{name: "unknown key", header: keyHeader(store.NewAPIKey()), msg: "Invalid API key"},
		{name: "revoked key", query: url.Values{"apiKey": {revokedKey}}, msg: "Invalid API key"},
		{name: "inactive client", header: keyHeader(inactiveKey), msg: "Invalid API key"},
		{name: "basic scheme", header: http.Header{"Authorization": {"Basic " + b.key}}, msg: "Invalid API key"},
		{name: "keys disagree", query: url.Values{"apiKey": {store.NewAPIKey()}}, header: keyHeader(b.key), msg: "Invalid API key"},
		{name: "unknown channel", query: channelsQuery("orders,nope"), header: keyHeader(b.key), msg: "Unknown channel: nope"},
		{name: "invalid since", query: url.Values{"since": {"x"}}, header: keyHeader(b.key), msg: "Invalid since"},
		{name: "invalid Last-Event-ID", header: http.Header{"X-Api-Key": {b.key}, "Last-Event-Id": {"1-"}}, msg: "Invalid since"},
		{name: "unknown channel before since", query: url.Values{"channels": {"x"}, "since": {"x"}}, header: keyHeader(b.key), msg: "Unknown channel: x"},
		{name: "format before channels", query: url.Values{"channels": {"x"}, "apiKey": {"nope"}}, msg: "Invalid apiKey format"},
		{name: "limit", header: keyHeader(limitedKey), msg: "Connection limit exceeded"},
		{name: "limit after since", query: url.Values{"since": {"x"}}, header: keyHeader(limitedKey), msg: "Invalid since"},
		{name: "post no key", method: http.MethodPost, body: `{"channels":["orders"]}`, msg: "apiKey required"},
		{name: "post malformed", method: http.MethodPost, body: `{"apiKey":`, header: keyHeader(b.key), msg: "invalid message"},
		{name: "post wrong type", method: http.MethodPost, body: `{"apiKey":"` + b.key + `","channels":"orders"}`, msg: "invalid message"},
		{name: "post too big", method: http.MethodPost, body: `{"apiKey":"` + b.key + `","x":"` + strings.Repeat("x", 64<<10) + `"}`, msg: "request body too big", code: 1009},
		{name: "post unknown channel", method: http.MethodPost, body: `{"apiKey":"` + b.key + `","channels":["orders","nope"]}`, msg: "Unknown channel: nope"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := b.open(t, tt.method, tt.query, tt.header, tt.body)
			c.requireError(t, tt.msg, cmpOr(tt.code, wire.ClosePolicy))
		})
	}
	var leases int
	require.NoError(t, b.pool.QueryRow(ctx, `SELECT count(*) FROM hub.leases`).Scan(&leases))
	require.Equal(t, 1, leases, "a refused subscribe holds nothing")
}

func cmpOr(a, b int) int {
	if a != 0 {
		return a
	}
	return b
}

func TestSSEKeyLocations(t *testing.T) {
	t.Parallel()
	b := setupSSE(t, 0)
	hex32 := strings.ReplaceAll(b.key, "-", "")
	orders := []string{"orders"}
	tests := []struct {
		name   string
		method string
		query  url.Values
		header http.Header
		body   string
	}{
		{name: "X-API-Key", query: channelsQuery("orders"), header: keyHeader(b.key)},
		{name: "bearer", query: channelsQuery("orders"), header: http.Header{"Authorization": {"bearer " + b.key}}},
		{name: "bare authorization", query: channelsQuery("orders"), header: http.Header{"Authorization": {b.key}}},
		{name: "query", query: url.Values{"channels": {"orders"}, "apiKey": {strings.ToUpper(b.key)}}},
		{name: "query hex32", query: url.Values{"channels": {" orders,orders "}, "apiKey": {hex32}}},
		{name: "agreeing sources", query: url.Values{"channels": {"orders"}, "apiKey": {hex32}}, header: keyHeader(b.key)},
		{name: "post body", method: http.MethodPost, body: `{"apiKey":"` + b.key + `","channels":["orders"]}`},
		{name: "post header", method: http.MethodPost, header: keyHeader(b.key), body: `{"channels":["orders"]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := b.open(t, tt.method, tt.query, tt.header, tt.body)
			c.requireConnected(t, orders)
		})
	}
	t.Run("post header only", func(t *testing.T) {
		b.post(t, keyHeader(b.key), "").requireConnected(t, b.hub.Channels())
	})
}

func TestSSEKeepAlive(t *testing.T) {
	t.Parallel()
	b := setupSSE(t, 20*time.Millisecond)
	c := b.get(t, nil, keyHeader(b.key))
	c.requireConnected(t, b.hub.Channels())
	require.Equal(t, sseEvent{comment: "keep-alive"}, c.nextAny(t))
	require.Equal(t, sseEvent{comment: "keep-alive"}, c.nextAny(t))
}

func TestSSEResume(t *testing.T) {
	t.Parallel()
	b := setupSSE(t, 0)
	first := b.get(t, channelsQuery("orders"), keyHeader(b.key))
	first.requireConnected(t, []string{"orders"})
	for i := range 5 {
		b.exec(t, `INSERT INTO orders (client, account_id) VALUES ('acme', $1)`, string(rune('A'+i)))
	}
	var ids []string
	for range 5 {
		ids = append(ids, first.broadcast(t).id)
	}
	first.cancel() // the stream is cut after the client saw every event

	rest := func(t *testing.T, c *sseClient, from int) {
		t.Helper()
		c.requireConnected(t, []string{"orders"}, true)
		for _, id := range ids[from:] {
			require.Equal(t, id, c.broadcast(t).id)
		}
	}
	t.Run("Last-Event-ID", func(t *testing.T) {
		c := b.get(t, channelsQuery("orders"), http.Header{"X-Api-Key": {b.key}, "Last-Event-Id": {ids[1]}})
		rest(t, c, 2)
		b.exec(t, `INSERT INTO orders (client, account_id) VALUES ('acme', 'live')`)
		pos, data := b.lastEvent(t, "orders")
		require.Equal(t, sseEvent{id: pos, event: "broadcast", data: data}, c.broadcast(t))
		ids = append(ids, pos)
	})
	t.Run("since", func(t *testing.T) {
		c := b.get(t, url.Values{"channels": {"orders"}, "since": {ids[3]}}, keyHeader(b.key))
		rest(t, c, 4)
	})
	t.Run("Last-Event-ID wins over since", func(t *testing.T) {
		c := b.get(t, url.Values{"channels": {"orders"}, "since": {ids[0]}}, http.Header{"X-Api-Key": {b.key}, "Last-Event-Id": {ids[2]}})
		rest(t, c, 3)
	})
	t.Run("Last-Event-ID wins over an invalid since", func(t *testing.T) {
		c := b.get(t, url.Values{"channels": {"orders"}, "since": {"x"}}, http.Header{"X-Api-Key": {b.key}, "Last-Event-Id": {ids[4]}})
		rest(t, c, 5)
	})
	t.Run("post since", func(t *testing.T) {
		c := b.post(t, nil, `{"apiKey":"`+b.key+`","channels":["orders"],"since":"`+ids[0]+`"}`)
		rest(t, c, 1)
	})
	t.Run("newer than the log", func(t *testing.T) {
		c := b.get(t, url.Values{"channels": {"orders"}, "since": {"99999999999-1"}}, keyHeader(b.key))
		c.requireConnected(t, []string{"orders"}, false)
	})
}

// TestSSEServerCloses covers the server's closes of a subscribed stream:
// each is an error event with protocol A's close code, then the end.
func TestSSEServerCloses(t *testing.T) {
	t.Parallel()
	b := setupSSE(t, 0)
	ctx := context.Background()
	leaseID := func(t *testing.T, keyID int64) string {
		var id string
		require.NoError(t, b.pool.QueryRow(ctx, `SELECT id FROM hub.leases WHERE key_id = $1`, keyID).Scan(&id))
		return id
	}
	requireReleased := func(t *testing.T, keyID int64) {
		require.Eventually(t, func() bool {
			var n int
			require.NoError(t, b.pool.QueryRow(ctx, `SELECT count(*) FROM hub.leases WHERE key_id = $1`, keyID).Scan(&n))
			return n == 0
		}, sseWait, 10*time.Millisecond)
	}

	t.Run("revoked", func(t *testing.T) {
		k, key := b.newKey(t, "acme", 0)
		c := b.get(t, nil, keyHeader(key))
		c.requireConnected(t, b.hub.Channels())
		_, err := b.store.APIKeyRevoke(ctx, k.ID)
		require.NoError(t, err)
		revokedAt := time.Now()
		require.Equal(t, sseEvent{event: "error", data: `{"message":"api key revoked","code":1008}`}, c.next(t))
		require.Less(t, time.Since(revokedAt), 2*time.Second)
		c.requireEnd(t)
		requireReleased(t, k.ID)
	})
	t.Run("deactivated", func(t *testing.T) {
		_, err := b.store.ClientCreate(ctx, "leaving")
		require.NoError(t, err)
		k, key := b.newKey(t, "leaving", 0)
		c := b.get(t, nil, keyHeader(key))
		c.requireConnected(t, b.hub.Channels())
		_, err = b.store.ClientSetActive(ctx, "leaving", false)
		require.NoError(t, err)
		c.requireError(t, "client deactivated", 1008)
		requireReleased(t, k.ID)
	})
	t.Run("kicked", func(t *testing.T) {
		k, key := b.newKey(t, "acme", 0)
		c := b.get(t, nil, keyHeader(key))
		c.requireConnected(t, b.hub.Channels())
		require.NoError(t, b.store.LeaseKick(ctx, leaseID(t, k.ID)))
		c.requireError(t, "closed by admin", 1008)
		requireReleased(t, k.ID)
	})
	t.Run("slow consumer", func(t *testing.T) {
		k, key := b.newKey(t, "acme", 0)
		c := b.get(t, nil, keyHeader(key))
		c.requireConnected(t, b.hub.Channels())
		require.True(t, b.hub.CloseID(leaseID(t, k.ID), wire.SlowConsumer("1-2")))
		c.requireError(t, "slow consumer; resume from 1-2", 1013)
	})
	t.Run("shutdown", func(t *testing.T) {
		k, key := b.newKey(t, "acme", 0)
		c := b.get(t, nil, keyHeader(key))
		c.requireConnected(t, b.hub.Channels())
		b.hub.CloseAll(wire.CloseShutdown)
		c.requireError(t, "server shutting down", 1012)
		requireReleased(t, k.ID)
	})
}

// TestSSEClientGone: a stream the client closes frees its slot.
func TestSSEClientGone(t *testing.T) {
	t.Parallel()
	b := setupSSE(t, 0)
	_, key := b.newKey(t, "acme", 1)
	c := b.get(t, nil, keyHeader(key))
	c.requireConnected(t, b.hub.Channels())
	c.cancel()
	require.Eventually(t, func() bool {
		var n int
		require.NoError(t, b.pool.QueryRow(context.Background(), `SELECT count(*) FROM hub.leases`).Scan(&n))
		return n == 0
	}, sseWait, 10*time.Millisecond)
	b.get(t, nil, keyHeader(key)).requireConnected(t, b.hub.Channels())
}

// TestSSECrossTransport: one key on protocol A and SSE at once; both get
// the same events at the same positions, and both count toward its limit.
func TestSSECrossTransport(t *testing.T) {
	t.Parallel()
	b := setupSSE(t, 0)
	_, key := b.newKey(t, "acme", 2)
	ws, resp, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(b.srv.URL, "http")+"/ws/subscribe", nil)
	require.NoError(t, err)
	resp.Body.Close()
	t.Cleanup(func() { ws.Close() })
	require.NoError(t, ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"subscribe","apiKey":"`+key+`","channels":["orders"]}`)))
	readWS := func() map[string]any {
		t.Helper()
		require.NoError(t, ws.SetReadDeadline(time.Now().Add(sseWait)))
		_, data, err := ws.ReadMessage()
		require.NoError(t, err)
		var m map[string]any
		require.NoError(t, json.Unmarshal(data, &m), string(data))
		return m
	}
	require.Equal(t, "subscribed", readWS()["type"])
	c := b.get(t, channelsQuery("orders"), keyHeader(key))
	c.requireConnected(t, []string{"orders"})
	b.get(t, nil, keyHeader(key)).requireError(t, "Connection limit exceeded", 1008)

	b.exec(t, `INSERT INTO orders (client, account_id) VALUES ('acme', 'A'), ('acme', 'B'), ('acme', 'C')`)
	for range 3 {
		m := readWS()
		e := c.broadcast(t)
		require.Equal(t, m["id"], e.id)
		var data map[string]any
		require.NoError(t, json.Unmarshal([]byte(e.data), &data))
		require.Equal(t, m["payload"], data["payload"])
	}
}

// TestSSETenantIsolation: a key sees its client's rows and the global
// channels, never another client's rows.
func TestSSETenantIsolation(t *testing.T) {
	t.Parallel()
	b := setupSSE(t, 0)
	_, err := b.store.ClientCreate(context.Background(), "other")
	require.NoError(t, err)
	_, otherKey := b.newKey(t, "other", 0)
	acme := b.get(t, channelsQuery("orders,scores"), keyHeader(b.key))
	acme.requireConnected(t, []string{"orders", "scores"})
	other := b.get(t, channelsQuery("orders,scores"), keyHeader(otherKey))
	other.requireConnected(t, []string{"orders", "scores"})

	b.exec(t, `INSERT INTO orders (client, account_id) VALUES ('other', 'O')`)
	otherPos, _ := b.lastEvent(t, "orders")
	b.exec(t, `INSERT INTO scores (fixture_id) VALUES ('F1')`)
	b.exec(t, `UPDATE scores SET current_minute = 1`)
	scorePos, _ := b.lastEvent(t, "scores")
	b.exec(t, `INSERT INTO orders (client, account_id) VALUES ('acme', 'A')`)
	acmePos, _ := b.lastEvent(t, "orders")

	require.Equal(t, scorePos, acme.broadcast(t).id)
	require.Equal(t, acmePos, acme.broadcast(t).id)
	require.Equal(t, otherPos, other.broadcast(t).id)
	require.Equal(t, scorePos, other.broadcast(t).id)
}

// FuzzSSERequest: reading a request never panics; it gives a refusal or a
// key in its canonical form.
func FuzzSSERequest(f *testing.F) {
	key := store.NewAPIKey()
	f.Add("Bearer "+key, "", "", `{"channels":["orders"]}`, "1-2", true)
	f.Add("", strings.ToUpper(key), strings.ReplaceAll(key, "-", ""), "", "", false)
	f.Add("Basic x", key, key, `{"apiKey":null,"since":3}`, "", true)
	f.Add("", key, "", "orders,bets,orders", "", false)
	f.Add("", "", key, strings.Repeat("c,", maxQueryBytes/2), "", false)
	f.Fuzz(func(t *testing.T, auth, xkey, query, body, lastID string, post bool) {
		r := httptest.NewRequest(http.MethodGet, "/sse/subscribe", nil)
		if post {
			r = httptest.NewRequest(http.MethodPost, "/sse/subscribe", strings.NewReader(body))
		}
		r.URL.RawQuery = url.Values{"apiKey": {query}, "channels": {body}, "since": {lastID}}.Encode()
		if auth != "" {
			r.Header["Authorization"] = []string{auth}
		}
		r.Header["X-Api-Key"] = []string{xkey}
		r.Header["Last-Event-Id"] = []string{lastID}
		req := readSSERequest(r, 1<<10)
		if len(r.URL.RawQuery) > maxQueryBytes { // nothing else is read (issue 12)
			require.Equal(t, sseRequest{code: wire.CloseTooBig, msg: msgQueryTooLong}, req)
			return
		}
		names := (&subRequest{channels: req.channels, channelList: req.channelList}).names()
		require.Len(t, names, len(slices.Compact(slices.Sorted(slices.Values(names)))), "repeats dropped")
		if req.code != 0 {
			require.NotEmpty(t, req.msg)
			return
		}
		require.Empty(t, req.msg)
		if req.key.msg != "" {
			require.Empty(t, req.key.key)
			return
		}
		canon, ok := wire.CanonicalKey(req.key.key, false)
		require.True(t, ok, req.key.key)
		require.Equal(t, canon, req.key.key)
	})
}

// TestSSESnapshot: snapshot=true sends the rows as snapshot events (no id),
// then snapshot_end with the seam as its id; a reconnect with
// Last-Event-ID resumes from it instead of taking a new snapshot. The
// filter parameter narrows the rows (A9 is acme's too).
func TestSSESnapshot(t *testing.T) {
	t.Parallel()
	b := setupSSE(t, 0)
	b.exec(t, `INSERT INTO orders (client, account_id) VALUES ('acme', 'A1'), ('other', 'O1'), ('acme', 'A9')`)
	q := url.Values{"channels": {"orders"}, "snapshot": {"true"}, "filter": {`{"orders":{"accountId":["A1"]}}`}}
	c := b.get(t, q, keyHeader(b.key))
	connected := c.next(t)
	require.Equal(t, "connected", connected.event)
	require.Contains(t, connected.data, `"snapshot":true`)
	row := c.next(t)
	require.Equal(t, "snapshot", row.event)
	require.Empty(t, row.id)
	var rowData struct {
		Channel string
		Payload map[string]any
	}
	require.NoError(t, json.Unmarshal([]byte(row.data), &rowData))
	require.Equal(t, "orders", rowData.Channel)
	require.Equal(t, "A1", rowData.Payload["accountId"], "acme's row, not other's")
	end := c.next(t)
	require.Equal(t, "snapshot_end", end.event)
	require.NotEmpty(t, end.id)
	require.Equal(t, `{"id":"`+end.id+`"}`, end.data)

	b.exec(t, `UPDATE orders SET order_status = 'filled' WHERE account_id = 'A1'`)
	pos, data := b.lastEvent(t, "orders")
	e := c.broadcast(t)
	require.Equal(t, pos, e.id)
	require.Equal(t, data, e.data)

	again := b.get(t, q, http.Header{"X-Api-Key": {b.key}, "Last-Event-Id": {end.id}})
	require.Equal(t, "connected", again.next(t).event)
	require.Equal(t, pos, again.broadcast(t).id, "resumed after snapshot_end, with no second snapshot")

	both := b.get(t, url.Values{"snapshot": {"true"}, "since": {end.id}}, keyHeader(b.key))
	both.requireError(t, "snapshot and since are exclusive", wire.ClosePolicy)
}
