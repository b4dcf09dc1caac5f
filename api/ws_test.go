package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/hubdev/hub/api"
	"github.com/hubdev/hub/api/apitest"
	"github.com/hubdev/hub/hub"
	"github.com/hubdev/hub/hub/hubtest"
	"github.com/hubdev/hub/store"
)

// frameWait bounds every wait for a frame; tests wait on frames, not time.
const frameWait = 10 * time.Second

type wsBundle struct {
	pool  *pgxpool.Pool
	store *store.Store
	url   string
	base  string // http://host:port
	key   string // client acme's key
	hub   *hub.Hub
}

// setupWS runs a reader, a hub and the HTTP API on a fresh database, with
// a client "acme" and one of its keys.
func setupWS(t *testing.T, cfg api.Config) *wsBundle {
	t.Helper()
	return setupWSHub(t, cfg, hub.Config{})
}

// setupWSHub is setupWS with the hub configured by hcfg.
func setupWSHub(t *testing.T, cfg api.Config, hcfg hub.Config) *wsBundle {
	t.Helper()
	env := hubtest.Start(t, hubtest.Options{Hub: hcfg})
	b := &wsBundle{pool: env.Pool, store: env.Store, hub: env.Hub}
	cfg.Ready = func(context.Context) error { return nil }
	cfg.Hub, cfg.Store, cfg.Leases, cfg.Logger = env.Hub, env.Store, env.Node, env.Log
	cfg.Conns = &api.Conns{}
	srv := httptest.NewUnstartedServer(api.New(cfg))
	srv.Listener = api.SendBufferListener(srv.Listener)
	srv.Start()
	t.Cleanup(srv.Close)
	t.Cleanup(func() { // runs before srv.Close, after the clients closed
		ctx, cancel := context.WithTimeout(context.Background(), frameWait)
		defer cancel()
		require.NoError(t, cfg.Conns.Wait(ctx))
	})
	b.base = srv.URL
	b.url = "ws" + strings.TrimPrefix(srv.URL, "http") + "/ws/subscribe"
	b.key = env.Key(t, "acme", 0)
	return b
}

func (b *wsBundle) dial(t *testing.T) *websocket.Conn {
	t.Helper()
	return b.dialHeader(t, nil)
}

func (b *wsBundle) dialHeader(t *testing.T, h http.Header) *websocket.Conn {
	t.Helper()
	c, resp, err := websocket.DefaultDialer.Dial(b.url, h)
	require.NoError(t, err)
	resp.Body.Close()
	t.Cleanup(func() { c.Close() })
	return c
}

func (b *wsBundle) exec(t *testing.T, sql string, args ...any) {
	t.Helper()
	_, err := b.pool.Exec(context.Background(), sql, args...)
	require.NoError(t, err)
}

func send(t *testing.T, c *websocket.Conn, frame string) {
	t.Helper()
	require.NoError(t, c.WriteMessage(websocket.TextMessage, []byte(frame)))
}

// read returns the next frame, skipping heartbeats.
func read(t *testing.T, c *websocket.Conn) map[string]any {
	t.Helper()
	for {
		require.NoError(t, c.SetReadDeadline(time.Now().Add(frameWait)))
		_, data, err := c.ReadMessage()
		require.NoError(t, err)
		var m map[string]any
		require.NoError(t, json.Unmarshal(data, &m), string(data))
		if m["type"] != "heartbeat" {
			return m
		}
	}
}

func requireError(t *testing.T, c *websocket.Conn, msg string) {
	t.Helper()
	require.Equal(t, map[string]any{"type": "error", "message": msg}, read(t, c))
}

// requireClosed reads until the close frame and checks it.
func requireClosed(t *testing.T, c *websocket.Conn, code int, reason string) {
	t.Helper()
	apitest.RequireClosed(t, c, frameWait, `"type":"heartbeat"`, code, reason)
}

// requireOpen shows the connection still answers.
func requireOpen(t *testing.T, c *websocket.Conn) {
	t.Helper()
	send(t, c, `{"type":"ping"}`)
	require.Equal(t, map[string]any{"type": "pong"}, read(t, c))
}

func subscribeFrame(key string, channels ...string) string {
	f, _ := json.Marshal(map[string]any{"type": "subscribe", "apiKey": key, "channels": channels})
	return string(f)
}

func TestWSSubscribeBroadcast(t *testing.T) {
	t.Parallel()
	b := setupWS(t, api.Config{})
	b.exec(t, `INSERT INTO orders (client, account_id, order_status) VALUES ('acme', 'A', 'open'), ('other', 'B', 'open')`)
	c := b.dial(t)
	send(t, c, subscribeFrame(strings.ToUpper(b.key), "orders"))
	require.Equal(t, map[string]any{"type": "subscribed", "subscriptionId": 1.0, "channels": []any{"orders"}}, read(t, c))

	b.exec(t, `UPDATE orders SET order_status = 'filled'`)
	m := read(t, c)
	if m["event"] == "INSERT" { // the hub may not have delivered it before the subscribe
		require.Equal(t, "A", m["payload"].(map[string]any)["accountId"])
		m = read(t, c)
	}
	require.Equal(t, "broadcast", m["type"])
	require.Equal(t, "orders", m["channel"])
	require.Equal(t, "UPDATE", m["event"])
	require.Equal(t, "A", m["payload"].(map[string]any)["accountId"])
	require.Equal(t, "filled", m["payload"].(map[string]any)["orderStatus"])
	require.Equal(t, "open", m["old"].(map[string]any)["orderStatus"])
	requireOpen(t, c) // other's row never came
}

func TestWSSubscribeRefused(t *testing.T) {
	t.Parallel()
	b := setupWS(t, api.Config{})
	ctx := context.Background()
	_, err := b.store.ClientCreate(ctx, "gone")
	require.NoError(t, err)
	_, inactiveKey, err := b.store.APIKeyCreate(ctx, store.APIKeyCreateParams{Client: "gone"})
	require.NoError(t, err)
	_, err = b.store.ClientSetActive(ctx, "gone", false)
	require.NoError(t, err)
	revoked, revokedKey, err := b.store.APIKeyCreate(ctx, store.APIKeyCreateParams{Client: "acme"})
	require.NoError(t, err)
	_, err = b.store.APIKeyRevoke(ctx, revoked.ID)
	require.NoError(t, err)

	tests := []struct {
		name  string
		frame string
		msg   string
		close bool
	}{
		{"no apiKey", `{"type":"subscribe","channels":["orders"]}`, "apiKey required", true},
		{"empty apiKey", `{"type":"subscribe","apiKey":""}`, "apiKey required", true},
		{"apiKey without hyphens", subscribeFrame(strings.ReplaceAll(b.key, "-", "")), "Invalid apiKey format", true},
		{"unknown key", subscribeFrame(store.NewAPIKey()), "Invalid API key", true},
		{"revoked key", subscribeFrame(revokedKey), "Invalid API key", true},
		{"inactive client", subscribeFrame(inactiveKey), "Invalid API key", true},
		{"format before channels", subscribeFrame("nope", "nope"), "Invalid apiKey format", true},
		{"unknown channel", subscribeFrame(b.key, "orders", "nope"), "Unknown channel: nope", false},
		{"invalid since", `{"type":"subscribe","apiKey":"` + b.key + `","since":"x"}`, "Invalid since", false},
		{"unknown channel before since", `{"type":"subscribe","apiKey":"` + b.key + `","channels":["x"],"since":"x"}`, "Unknown channel: x", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := b.dial(t)
			send(t, c, tt.frame)
			requireError(t, c, tt.msg)
			if tt.close {
				requireClosed(t, c, 1008, tt.msg)
				return
			}
			requireOpen(t, c)
			send(t, c, subscribeFrame(b.key, "orders")) // not subscribed, so the id is 1
			require.Equal(t, 1.0, read(t, c)["subscriptionId"])
		})
	}
}

func TestWSConnectionLimit(t *testing.T) {
	t.Parallel()
	b := setupWS(t, api.Config{})
	_, key, err := b.store.APIKeyCreate(context.Background(), store.APIKeyCreateParams{Client: "acme", MaxConnections: 1})
	require.NoError(t, err)
	first := b.dial(t)
	send(t, first, subscribeFrame(key))
	require.Equal(t, "subscribed", read(t, first)["type"])

	second := b.dial(t)
	send(t, second, subscribeFrame(key))
	requireError(t, second, "Connection limit exceeded")
	requireClosed(t, second, 1008, "Connection limit exceeded")

	// Closing the first connection releases its lease.
	require.NoError(t, first.Close())
	require.Eventually(t, func() bool {
		var n int
		err := b.pool.QueryRow(context.Background(), `SELECT count(*) FROM hub.leases`).Scan(&n)
		return err == nil && n == 0
	}, frameWait, 10*time.Millisecond)
	third := b.dial(t)
	send(t, third, subscribeFrame(key))
	require.Equal(t, "subscribed", read(t, third)["type"])
}

func TestWSResubscribe(t *testing.T) {
	t.Parallel()
	b := setupWS(t, api.Config{})
	c := b.dial(t)
	send(t, c, `{"type":"unsubscribe"}`)
	requireError(t, c, "Not subscribed")
	send(t, c, subscribeFrame(b.key, "orders"))
	require.Equal(t, 1.0, read(t, c)["subscriptionId"])
	send(t, c, `{"type":"subscribe","channels":["scores"],"since":null}`) // keeps the key
	require.Equal(t, map[string]any{"type": "subscribed", "subscriptionId": 2.0, "channels": []any{"scores"}}, read(t, c))
	send(t, c, subscribeFrame(store.NewAPIKey()))
	requireError(t, c, "apiKey cannot change")
	send(t, c, `{"type":"unsubscribe"}`)
	require.Equal(t, map[string]any{"type": "unsubscribed", "subscriptionId": 2.0}, read(t, c))
	send(t, c, `{"type":"unsubscribe"}`)
	requireError(t, c, "Not subscribed")

	send(t, c, `{"type":"subscribe","since":"0-0"}`)
	m := read(t, c)
	require.Equal(t, 3.0, m["subscriptionId"])
	require.Len(t, m["channels"], 5)
	require.Contains(t, m, "recovered")
}

func TestWSPingBeforeSubscribe(t *testing.T) {
	t.Parallel()
	b := setupWS(t, api.Config{})
	requireOpen(t, b.dial(t))
}

func TestWSHeartbeat(t *testing.T) {
	t.Parallel()
	b := setupWS(t, api.Config{HeartbeatInterval: 20 * time.Millisecond})
	c := b.dial(t)
	pinged := false
	c.SetPingHandler(func(string) error { pinged = true; return nil }) // runs inside ReadMessage
	require.NoError(t, c.SetReadDeadline(time.Now().Add(frameWait)))
	_, data, err := c.ReadMessage()
	require.NoError(t, err)
	require.JSONEq(t, `{"type":"heartbeat"}`, string(data))
	require.True(t, pinged, "a WebSocket ping comes with each heartbeat")
}

func TestWSClientPingAnswered(t *testing.T) {
	t.Parallel()
	b := setupWS(t, api.Config{})
	c := b.dial(t)
	pong := ""
	c.SetPongHandler(func(data string) error { pong = data; return nil }) // runs inside ReadMessage
	require.NoError(t, c.WriteControl(websocket.PingMessage, []byte("are you there"), time.Now().Add(frameWait)))
	send(t, c, `{"type":"ping"}`) // its reply comes after the pong
	require.Equal(t, "pong", read(t, c)["type"])
	require.Equal(t, "are you there", pong)
}

func TestWSAuthTimeout(t *testing.T) {
	t.Parallel()
	b := setupWS(t, api.Config{AuthTimeout: time.Second}) // room for a subscribe under -race
	c := b.dial(t)
	send(t, c, subscribeFrame(b.key, "nope")) // a refused subscribe does not stop the clock
	requireError(t, c, "Unknown channel: nope")
	requireError(t, c, "subscribe timeout")
	requireClosed(t, c, 1008, "subscribe timeout")

	ok := b.dial(t)
	send(t, ok, subscribeFrame(b.key))
	require.Equal(t, "subscribed", read(t, ok)["type"])
	requireOpen(t, ok) // still open well after the timeout would have struck
}

func TestWSInvalidMessages(t *testing.T) {
	t.Parallel()
	b := setupWS(t, api.Config{})
	c := b.dial(t)
	invalid := []string{`{`, `{"type":"nope"}`, `[]`, `{"type":"subscribe","channels":"orders"}`}
	for i := range 20 {
		if i == 5 {
			require.NoError(t, c.WriteMessage(websocket.BinaryMessage, []byte(`{"type":"ping"}`)))
		} else {
			send(t, c, invalid[i%len(invalid)])
		}
		requireError(t, c, "invalid message")
	}
	send(t, c, `{`)
	requireError(t, c, "too many invalid messages")
	requireClosed(t, c, 1008, "too many invalid messages")
}

func TestWSMessageTooBig(t *testing.T) {
	t.Parallel()
	b := setupWS(t, api.Config{MaxMessageBytes: 1024})
	c := b.dial(t)
	send(t, c, `{"type":"ping","pad":"`+strings.Repeat("x", 2000)+`"}`)
	requireClosed(t, c, 1009, "")
}

func TestWSHeaderAuth(t *testing.T) {
	t.Parallel()
	b := setupWS(t, api.Config{AuthTimeout: 50 * time.Millisecond})
	_, limited, err := b.store.APIKeyCreate(context.Background(), store.APIKeyCreateParams{Client: "acme", MaxConnections: 1})
	require.NoError(t, err)
	other := store.NewAPIKey()
	tests := []struct {
		name   string
		header http.Header
		msg    string // "" when accepted
	}{
		{"bearer", http.Header{"Authorization": {"bearer " + strings.ToUpper(b.key)}}, ""},
		{"bare key", http.Header{"Authorization": {b.key}}, ""},
		{"x-api-key", http.Header{"X-Api-Key": {b.key}}, ""},
		{"both agree", http.Header{"Authorization": {"Bearer " + b.key}, "X-Api-Key": {b.key}}, ""},
		{"both disagree", http.Header{"Authorization": {"Bearer " + b.key}, "X-Api-Key": {other}}, "Invalid or missing token"},
		{"basic", http.Header{"Authorization": {"Basic " + b.key}}, "Invalid or missing token"},
		{"empty bearer", http.Header{"Authorization": {"Bearer "}}, "Invalid or missing token"},
		// An empty header counts as missing (SPEC §4.4), as on SSE.
		{"empty bearer, x-api-key", http.Header{"Authorization": {"Bearer "}, "X-Api-Key": {b.key}}, ""},
		{"unknown key", http.Header{"X-Api-Key": {other}}, "Invalid or missing token"},
		{"hex32", http.Header{"X-Api-Key": {strings.ReplaceAll(b.key, "-", "")}}, "Invalid or missing token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := b.dialHeader(t, tt.header)
			if tt.msg != "" {
				requireError(t, c, tt.msg)
				requireClosed(t, c, 1008, tt.msg)
				return
			}
			send(t, c, `{"type":"subscribe","channels":["orders"]}`)
			require.Equal(t, "subscribed", read(t, c)["type"])
			requireOpen(t, c) // no auth timeout
			require.NoError(t, c.Close())
		})
	}
	t.Run("limit", func(t *testing.T) {
		first := b.dialHeader(t, http.Header{"X-Api-Key": {limited}})
		requireOpen(t, first) // authenticated: the lease is taken
		second := b.dialHeader(t, http.Header{"X-Api-Key": {limited}})
		requireError(t, second, "Connection limit exceeded")
		requireClosed(t, second, 1008, "Connection limit exceeded")
	})
}
