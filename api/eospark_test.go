package api

// Internal tests: the owner adds GET /v1/ws to routes(), so these serve
// newWSB on an echo of their own.

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/labstack/echo/v4"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hubdev/hub/api/apitest"
	"github.com/hubdev/hub/hub"
	"github.com/hubdev/hub/hub/hubtest"
	"github.com/hubdev/hub/hub/wire"
	"github.com/hubdev/hub/store"
)

// waitB bounds every wait for a frame; tests wait on frames, not time.
const waitB = 10 * time.Second

type bBundle struct {
	pool  *pgxpool.Pool
	store *store.Store
	node  *hub.Node
	hub   *hub.Hub
	url   string // ws://…/v1/ws
	key   string // client acme's key
}

// setupB runs a reader, a hub, a node and protocol B on a fresh database,
// with a client "acme" and one of its keys.
func setupB(t *testing.T, heartbeat time.Duration) *bBundle {
	t.Helper()
	env := hubtest.Start(t, hubtest.Options{NodeID: "node-b"})
	b := &bBundle{pool: env.Pool, store: env.Store, node: env.Node, hub: env.Hub}
	cfg := Config{Hub: env.Hub, Store: env.Store, Leases: env.Node, Logger: env.Log, Conns: &Conns{}}.withDefaults()
	e := echo.New()
	e.GET("/v1/ws", newWSB(cfg, heartbeat).serve)
	srv := httptest.NewServer(e)
	t.Cleanup(srv.Close)
	t.Cleanup(func() { // runs before srv.Close, after the clients closed
		ctx, cancel := context.WithTimeout(context.Background(), waitB)
		defer cancel()
		require.NoError(t, cfg.Conns.Wait(ctx))
	})
	b.url = "ws" + strings.TrimPrefix(srv.URL, "http") + "/v1/ws"
	b.key = b.newKey(t, "acme", 5)
	return b
}

func (b *bBundle) newKey(t *testing.T, client string, maxConns int) string {
	t.Helper()
	ctx := context.Background()
	if _, err := b.store.ClientCreate(ctx, client); err != nil {
		require.ErrorIs(t, err, store.ErrExists)
	}
	_, key, err := b.store.APIKeyCreate(ctx, store.APIKeyCreateParams{Client: client, MaxConnections: maxConns})
	require.NoError(t, err)
	return key
}

func (b *bBundle) exec(t *testing.T, sql string, args ...any) {
	t.Helper()
	_, err := b.pool.Exec(context.Background(), sql, args...)
	require.NoError(t, err)
}

// dial opens a connection with the key in the query.
func (b *bBundle) dial(t *testing.T, key string) *websocket.Conn {
	t.Helper()
	return b.dialURL(t, "?apikey="+key, nil)
}

func (b *bBundle) dialURL(t *testing.T, query string, h http.Header) *websocket.Conn {
	t.Helper()
	c, resp, err := websocket.DefaultDialer.Dial(b.url+query, h)
	require.NoError(t, err)
	resp.Body.Close()
	t.Cleanup(func() { c.Close() })
	return c
}

// readRawB returns the next frame, skipping heartbeats.
func readRawB(t *testing.T, c *websocket.Conn) string {
	t.Helper()
	for {
		require.NoError(t, c.SetReadDeadline(time.Now().Add(waitB)))
		_, data, err := c.ReadMessage()
		require.NoError(t, err)
		if !bytes.Contains(data, []byte(`"msg_type":"heartbeat"`)) {
			return string(data)
		}
	}
}

func readB(t *testing.T, c *websocket.Conn) map[string]any {
	t.Helper()
	var m map[string]any
	data := readRawB(t, c)
	require.NoError(t, json.Unmarshal([]byte(data), &m), data)
	return m
}

// requireFrameB reads the next frame and checks it is want, exactly.
func requireFrameB(t *testing.T, c *websocket.Conn, want string) {
	t.Helper()
	require.JSONEq(t, want, readRawB(t, c))
}

func sendB(t *testing.T, c *websocket.Conn, frame string) {
	t.Helper()
	require.NoError(t, c.WriteMessage(websocket.TextMessage, []byte(frame)))
}

// requireClosedB reads the close frame and checks it.
func requireClosedB(t *testing.T, c *websocket.Conn, code int, reason string) {
	t.Helper()
	apitest.RequireClosed(t, c, waitB, `"msg_type":"heartbeat"`, code, reason)
}

const invalidB = `{"errno":400,"msg_type":"error","errmsg":"invalid message"}`

// requireOpenB shows the connection still answers.
func requireOpenB(t *testing.T, c *websocket.Conn) {
	t.Helper()
	sendB(t, c, `{}`)
	requireFrameB(t, c, invalidB)
}

func authB(errno int, msg string) string {
	return fmt.Sprintf(`{"errno":%d,"msg_type":"auth","errmsg":%q}`, errno, msg)
}

func subscribeB(account, contract, action string) string {
	f, _ := json.Marshal(map[string]string{"msg_type": "subscribe", "account": account, "contract": contract, "action_name": action})
	return string(f)
}

func unsubscribeB(account, contract, action string) string {
	f, _ := json.Marshal(map[string]string{"msg_type": "unsubscribe", "account": account, "contract": contract, "action_name": action})
	return string(f)
}

const (
	subscribedB   = `{"errno":0,"msg_type":"subscribe","errmsg":"","data":{"subscribe":true,"msg":"ok"}}`
	unsubscribedB = `{"errno":0,"msg_type":"unsubscribe","errmsg":"","data":{"unsubscribe":true,"msg":"ok"}}`
)

func refusedB(msgType, reason string) string {
	return fmt.Sprintf(`{"errno":400,"msg_type":%q,"errmsg":%q,"data":{%q:false,"msg":%q}}`, msgType, reason, msgType, reason)
}

// subscribe subscribes c and waits for the reply: live from then on.
func subscribe(t *testing.T, c *websocket.Conn, account, contract, action string) {
	t.Helper()
	sendB(t, c, subscribeB(account, contract, action))
	requireFrameB(t, c, subscribedB)
}

// requireDataB reads the next frame, a data push, and returns its action.
func requireDataB(t *testing.T, c *websocket.Conn) map[string]any {
	t.Helper()
	m := readB(t, c)
	require.Equal(t, "data", m["msg_type"], m)
	return m["data"].(map[string]any)["actions"].([]any)[0].(map[string]any)
}

func actorOf(action map[string]any) string {
	return action["authorization"].([]any)[0].(map[string]any)["actor"].(string)
}

func TestEOSParkAuth(t *testing.T) {
	t.Parallel()
	b := setupB(t, 0)
	ctx := context.Background()
	revoked, revokedKey, err := b.store.APIKeyCreate(ctx, store.APIKeyCreateParams{Client: "acme"})
	require.NoError(t, err)
	_, err = b.store.APIKeyRevoke(ctx, revoked.ID)
	require.NoError(t, err)
	inactiveKey := b.newKey(t, "gone", 5)
	_, err = b.store.ClientSetActive(ctx, "gone", false)
	require.NoError(t, err)

	forbidden := []struct {
		name, query string
		header      http.Header
	}{
		{"missing", "", nil},
		{"empty", "?apikey=", http.Header{"Apikey": {""}}},
		{"bad format", "?apikey=nope", nil},
		{"hex31", "?apikey=" + strings.ReplaceAll(b.key, "-", "")[1:], nil},
		{"unknown", "?apikey=" + store.NewAPIKey(), nil},
		{"revoked", "?apikey=" + revokedKey, nil},
		{"inactive client", "", http.Header{"Apikey": {inactiveKey}}},
		{"query and header differ", "?apikey=" + b.key, http.Header{"Apikey": {store.NewAPIKey()}}},
		{"key before since", "?apikey=nope&since=x", nil},
	}
	for _, tt := range forbidden {
		t.Run(tt.name, func(t *testing.T) {
			c := b.dialURL(t, tt.query, tt.header)
			requireFrameB(t, c, authB(403, "Forbidden"))
			requireClosedB(t, c, 1008, "Forbidden")
		})
	}
	accepted := []struct {
		name string
		dial func(key string) (string, http.Header)
	}{
		{"query uuid", func(k string) (string, http.Header) { return "?apikey=" + k, nil }},
		{"query hex32", func(k string) (string, http.Header) { return "?apikey=" + strings.ReplaceAll(k, "-", ""), nil }},
		{"header upper case", func(k string) (string, http.Header) { return "", http.Header{"Apikey": {strings.ToUpper(k)}} }},
		{"both agree", func(k string) (string, http.Header) {
			return "?apikey=" + k, http.Header{"Apikey": {strings.ReplaceAll(k, "-", "")}}
		}},
	}
	for _, tt := range accepted {
		t.Run(tt.name, func(t *testing.T) {
			q, h := tt.dial(b.newKey(t, "acme", 5))
			c := b.dialURL(t, q, h)
			requireOpenB(t, c)
			subscribe(t, c, "*", "orders", "")
		})
	}
	t.Run("invalid since", func(t *testing.T) {
		c := b.dial(t, b.newKey(t, "acme", 5)+"&since=12")
		requireFrameB(t, c, `{"errno":400,"msg_type":"error","errmsg":"Invalid since"}`)
		requireClosedB(t, c, 1008, "Invalid since")
	})
}

func (b *bBundle) leases(t require.TestingT, protocol string) [][]string {
	rows, err := b.pool.Query(context.Background(), `SELECT channels FROM hub.leases WHERE protocol = $1 ORDER BY connected_at`, protocol)
	require.NoError(t, err)
	var out [][]string
	for rows.Next() {
		var ch []string
		require.NoError(t, rows.Scan(&ch))
		out = append(out, ch)
	}
	require.NoError(t, rows.Err())
	return out
}

// requireChannels waits until the one protocol B lease lists channels: the
// lease is updated right after the subscribe's reply is queued.
func (b *bBundle) requireChannels(t *testing.T, channels ...string) {
	t.Helper()
	want := [][]string{append([]string{}, channels...)}
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		assert.Equal(c, want, b.leases(c, store.ProtocolEOSPark))
	}, waitB, 10*time.Millisecond)
}

func TestEOSParkRepeatAndLimit(t *testing.T) {
	t.Parallel()
	b := setupB(t, 0)
	key := b.newKey(t, "acme", 1)
	first := b.dial(t, key)
	requireOpenB(t, first) // authenticated at the upgrade: the lease is held
	require.Len(t, b.leases(t, store.ProtocolEOSPark), 1)

	// At its limit too, but the repeat check comes first.
	second := b.dialURL(t, "", http.Header{"Apikey": {strings.ReplaceAll(key, "-", "")}})
	requireFrameB(t, second, authB(406, "No repeat connection."))
	requireClosedB(t, second, 1008, "No repeat connection.")
	requireOpenB(t, first)
	subscribe(t, first, "*", "orders", "")

	// Closing the first releases its lease.
	require.NoError(t, first.Close())
	require.Eventually(t, func() bool { return len(b.leases(t, store.ProtocolEOSPark)) == 0 }, waitB, 10*time.Millisecond)
	requireOpenB(t, b.dial(t, key))

	// Other transports count toward max_connections.
	limited := b.newKey(t, "acme", 2)
	a, err := b.store.APIKeyLookup(context.Background(), limited)
	require.NoError(t, err)
	for _, id := range []string{"ws-1", "ws-2"} {
		require.NoError(t, b.node.Acquire(context.Background(), store.LeaseAcquireParams{ID: id, KeyID: a.ID, Protocol: store.ProtocolWS}))
	}
	c := b.dial(t, limited)
	requireFrameB(t, c, authB(429, "Connection limit exceeded"))
	requireClosedB(t, c, 1008, "Connection limit exceeded")
	b.node.Release(context.Background(), "ws-1")
	requireOpenB(t, b.dial(t, limited))
}

var heartbeatTime = regexp.MustCompile(`^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$`)

func TestEOSParkHeartbeat(t *testing.T) {
	t.Parallel()
	const every = 300 * time.Millisecond
	b := setupB(t, every)
	start := time.Now()
	c := b.dial(t, b.key)
	require.NoError(t, c.SetReadDeadline(time.Now().Add(waitB)))
	_, data, err := c.ReadMessage()
	require.NoError(t, err)
	require.GreaterOrEqual(t, time.Since(start), every, "the first heartbeat comes after one interval")
	var m struct {
		Errno   *int   `json:"errno"`
		MsgType string `json:"msg_type"`
		Errmsg  *string
		Data    struct {
			HeartBeat string `json:"heart_beat"`
		} `json:"data"`
	}
	require.NoError(t, json.Unmarshal(data, &m))
	require.Regexp(t, heartbeatTime, m.Data.HeartBeat)
	require.JSONEq(t, `{"errno":0,"msg_type":"heartbeat","errmsg":"","data":{"heart_beat":"`+m.Data.HeartBeat+`"}}`, string(data))
	at, err := time.ParseInLocation(time.DateTime, m.Data.HeartBeat, time.UTC)
	require.NoError(t, err)
	require.WithinDuration(t, time.Now().UTC(), at, 5*time.Second, "UTC")
}

func TestEOSParkSubscribe(t *testing.T) {
	t.Parallel()
	b := setupB(t, 0)
	b.exec(t, `CREATE TABLE extra (id int PRIMARY KEY, client text)`)
	b.exec(t, `SELECT hub.attach('extra', 'extra', 'client', NULL, '{INSERT}')`)
	require.Eventually(t, func() bool { return slices.Contains(b.hub.Channels(), "extra") }, waitB, 5*time.Millisecond)
	c := b.dial(t, b.key)
	tests := []struct{ frame, reason string }{
		{subscribeB("a", "orders,nope", ""), "Unknown contract: nope"},
		{subscribeB("a", "Orders", ""), "Unknown contract: Orders"},
		{subscribeB("a1,a2,a3,a4,a5,a6", "orders", ""), "too many accounts (at most 5 per connection)"},
		{subscribeB("", "orders", ""), "account required"},
		{subscribeB(" , ", "orders", ""), "account required"},
		{subscribeB("a", "", ""), "contract required"},
		{`{"msg_type":"subscribe","contract":"orders"}`, "account required"},
	}
	for _, tt := range tests {
		sendB(t, c, tt.frame)
		requireFrameB(t, c, refusedB("subscribe", tt.reason))
	}
	sendB(t, c, unsubscribeB("a,b", "orders", ""))
	requireFrameB(t, c, refusedB("unsubscribe", "unsubscribe takes one account and one contract"))

	subscribe(t, c, "a1,a2, a3", "orders,bets", "UPDATE")
	b.requireChannels(t, "bets", "orders")
	sendB(t, c, subscribeB("a4,a5,a6", "orders", "")) // 6 in total
	requireFrameB(t, c, refusedB("subscribe", "too many accounts (at most 5 per connection)"))
	subscribe(t, c, "a4,*", "orders", "") // "*" is the fifth
	sendB(t, c, subscribeB("a1", "accounts,scores,emergency,extra", ""))
	requireFrameB(t, c, refusedB("subscribe", "too many contracts (at most 5 per connection)"))
	subscribe(t, c, "a1", "accounts,scores,emergency", "")
	b.requireChannels(t, "accounts", "bets", "emergency", "orders", "scores")
	// The refusals changed nothing; freeing a contract makes room.
	sendB(t, c, unsubscribeB("a1", "accounts", ""))
	requireFrameB(t, c, unsubscribedB)
	subscribe(t, c, "a1", "extra", "")
	b.requireChannels(t, "bets", "emergency", "extra", "orders", "scores")

	// Malformed frames keep the connection open.
	for _, f := range []string{`{`, `[]`, `{"msg_type":"nope"}`, `{"msg_type":"Subscribe","account":"a","contract":"orders"}`, `{"msg_type":"subscribe","account":1,"contract":"orders"}`} {
		sendB(t, c, f)
		requireFrameB(t, c, invalidB)
	}
	require.NoError(t, c.WriteMessage(websocket.BinaryMessage, []byte(subscribeB("a", "orders", ""))))
	requireFrameB(t, c, invalidB)
	requireOpenB(t, c)
}

// event returns how protocol B must push the event with that id.
func (b *bBundle) event(t *testing.T, id int64) string {
	t.Helper()
	e := loggedEvent(t, b.store, id)
	action := fmt.Sprintf(`{"account":%q,"name":%q,"authorization":[{"actor":%q,"permission":"active"}],"data":%s`, e.Channel, e.Op, e.Subject, e.Payload)
	if e.Old != nil {
		action += `,"old":` + string(e.Old)
	}
	return fmt.Sprintf(`{"errno":0,"msg_type":"data","errmsg":"","data":{"trx_id":"%s","block_num":%d,"trx_timestamp":%q,"actions":[%s}]}}`,
		e.Pos, id, e.CreatedAt.UTC().Format("2006-01-02T15:04:05.000"), action)
}

// requirePushB reads the next frame, checks it is exactly the push of its
// event, and returns the event's action.
func (b *bBundle) requirePushB(t *testing.T, c *websocket.Conn) map[string]any {
	t.Helper()
	raw := readRawB(t, c)
	var m struct {
		Data struct {
			BlockNum int64 `json:"block_num"`
		} `json:"data"`
	}
	require.NoError(t, json.Unmarshal([]byte(raw), &m), raw)
	require.JSONEq(t, b.event(t, m.Data.BlockNum), raw)
	var full map[string]any
	require.NoError(t, json.Unmarshal([]byte(raw), &full))
	return full["data"].(map[string]any)["actions"].([]any)[0].(map[string]any)
}

func TestEOSParkDelivery(t *testing.T) {
	t.Parallel()
	b := setupB(t, 0)
	b.exec(t, `INSERT INTO scores (fixture_id, live) VALUES ('f1', false)`) // scores broadcast UPDATEs only
	c := b.dial(t, b.key)
	subscribe(t, c, "A1", "orders", "UPDATE")
	subscribe(t, c, "A2", "orders", "")
	subscribe(t, c, "*", "scores", "")
	marker := func(minute int) { // a scores push that must come next
		t.Helper()
		b.exec(t, `UPDATE scores SET current_minute = $1`, minute)
		action := requireDataB(t, c)
		require.Equal(t, "scores", action["account"])
		require.Equal(t, float64(minute), action["data"].(map[string]any)["currentMinute"])
	}

	b.exec(t, `INSERT INTO orders (client, account_id, order_status) VALUES ('acme', 'A1', 'open')`) // INSERT: not subscribed
	b.exec(t, `INSERT INTO orders (client, account_id, order_status) VALUES ('acme', 'A2', 'open')`)
	action := b.requirePushB(t, c)
	require.Equal(t, "INSERT", action["name"])
	require.Equal(t, "A2", actorOf(action))
	require.NotContains(t, action, "old")
	b.exec(t, `UPDATE orders SET order_status = 'filled' WHERE account_id = 'A1'`)
	action = b.requirePushB(t, c)
	require.Equal(t, "UPDATE", action["name"])
	require.Equal(t, "A1", actorOf(action))
	require.Equal(t, map[string]any{"orderStatus": "open"}, action["old"])
	b.exec(t, `INSERT INTO orders (client, account_id) VALUES ('acme', 'a1'), ('acme', NULL)`) // names are case-sensitive
	marker(1)

	sendB(t, c, unsubscribeB("A1", "orders", "UPDATE"))
	requireFrameB(t, c, unsubscribedB)
	sendB(t, c, unsubscribeB("A9", "orders", "")) // not subscribed: still ok
	requireFrameB(t, c, unsubscribedB)
	sendB(t, c, unsubscribeB("A2", "orders", "INSERT")) // the entry with "" stays
	requireFrameB(t, c, unsubscribedB)
	b.exec(t, `UPDATE orders SET order_status = 'void' WHERE account_id = 'A1'`)
	b.exec(t, `INSERT INTO orders (client, account_id) VALUES ('acme', 'A2')`)
	action = requireDataB(t, c)
	require.Equal(t, []any{"A2", "INSERT"}, []any{actorOf(action), action["name"]})
	sendB(t, c, unsubscribeB("A2", "orders", ""))
	requireFrameB(t, c, unsubscribedB)
	b.exec(t, `INSERT INTO orders (client, account_id) VALUES ('acme', 'A2')`)
	marker(2)
	b.requireChannels(t, "scores")

	sendB(t, c, unsubscribeB("*", "scores", ""))
	requireFrameB(t, c, unsubscribedB)
	b.requireChannels(t)
	subscribe(t, c, "*", "scores", "UPDATE") // a subscription again after none
	marker(3)
}

func TestEOSParkTenantsAndEmergency(t *testing.T) {
	t.Parallel()
	b := setupB(t, 0)
	acme := b.dial(t, b.key)
	subscribe(t, acme, "A1", "orders,emergency", "")
	other := b.dial(t, b.newKey(t, "other", 5))
	subscribe(t, other, "*", "orders,emergency", "")

	b.exec(t, `INSERT INTO orders (client, account_id) VALUES ('other', 'A1')`)
	b.exec(t, `UPDATE emergency SET emergency = true, reason = 'drill' WHERE id = 1`)
	b.exec(t, `INSERT INTO orders (client, account_id) VALUES ('acme', 'A1')`)

	// other's row and the subject-less emergency never reach acme's A1.
	action := b.requirePushB(t, acme)
	require.Equal(t, []any{"orders", "INSERT", "A1"}, []any{action["account"], action["name"], actorOf(action)})
	require.Equal(t, "acme", action["data"].(map[string]any)["client"])

	action = b.requirePushB(t, other)
	require.Equal(t, "other", action["data"].(map[string]any)["client"])
	action = b.requirePushB(t, other) // "*" takes events without a subject
	require.Equal(t, []any{"emergency", "UPDATE", ""}, []any{action["account"], action["name"], actorOf(action)})
	require.Equal(t, true, action["data"].(map[string]any)["emergency"])
	b.exec(t, `UPDATE emergency SET emergency = false WHERE id = 1`)
	action = requireDataB(t, other) // acme's order never came
	require.Equal(t, "emergency", action["account"])
}

func TestEOSParkSince(t *testing.T) {
	t.Parallel()
	b := setupB(t, 0)
	b.exec(t, `INSERT INTO scores (fixture_id, live) VALUES ('f1', false)`)
	c := b.dial(t, b.key)
	subscribe(t, c, "*", "orders", "")
	b.exec(t, `INSERT INTO orders (client, account_id, order_status) VALUES ('acme', 'A1', '1')`)
	m := readB(t, c)
	last := m["data"].(map[string]any)["trx_id"].(string)
	require.NoError(t, c.Close())

	b.exec(t, `INSERT INTO orders (client, account_id, order_status) VALUES ('acme', 'A1', '2')`)
	b.exec(t, `UPDATE scores SET live = true`)
	b.exec(t, `INSERT INTO orders (client, account_id, order_status) VALUES ('acme', 'A2', '3'), ('other', 'A1', 'x')`)
	require.Eventually(t, func() bool { return len(b.leases(t, store.ProtocolEOSPark)) == 0 }, waitB, 10*time.Millisecond)

	c = b.dial(t, b.key+"&since="+last)
	requireOpenB(t, c) // nothing comes before a subscribe
	subscribe(t, c, "*", "orders", "")
	for _, status := range []string{"2", "3"} {
		action := b.requirePushB(t, c)
		require.Equal(t, status, action["data"].(map[string]any)["orderStatus"])
	}
	subscribe(t, c, "*", "scores", "") // later subscribes replay nothing
	b.exec(t, `INSERT INTO orders (client, account_id, order_status) VALUES ('acme', 'A1', '4')`)
	action := b.requirePushB(t, c)
	require.Equal(t, "4", action["data"].(map[string]any)["orderStatus"])
}

func TestEOSParkServerClose(t *testing.T) {
	t.Parallel()
	b := setupB(t, 0)
	c := b.dial(t, b.key)
	subscribe(t, c, "*", "orders", "")
	a, err := b.store.APIKeyLookup(context.Background(), b.key)
	require.NoError(t, err)
	_, err = b.store.APIKeyRevoke(context.Background(), a.ID)
	require.NoError(t, err)
	requireFrameB(t, c, `{"errno":1008,"msg_type":"close","errmsg":"api key revoked"}`)
	requireClosedB(t, c, 1008, "api key revoked")
}

func TestEOSParkSeedClient(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	build := func(name string) string {
		bin := filepath.Join(dir, name)
		out, err := exec.Command("go", "build", "-o", bin, "./testdata/eospark/"+name).CombinedOutput()
		require.NoError(t, err, "%s", out)
		return bin
	}
	heartbeat, data := build("heartbeat"), build("data")

	t.Run("heartbeat", func(t *testing.T) {
		t.Parallel()
		b := setupB(t, 20*time.Millisecond)
		out, err := exec.Command(heartbeat, "-url", b.url, "-key", strings.ReplaceAll(b.key, "-", ""), "-n", "2", "-timeout", "30s").CombinedOutput()
		require.NoError(t, err, "%s", out)
		beats := regexp.MustCompile(`recv: \{"errno":0,"msg_type":"heartbeat","errmsg":"","data":\{"heart_beat":"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d"\}\}`)
		require.Len(t, beats.FindAllString(string(out), -1), 2, "%s", out)
	})
	t.Run("data", func(t *testing.T) {
		t.Parallel()
		b := setupB(t, 0)
		b.exec(t, `INSERT INTO orders (client, account_id, order_status) VALUES ('acme', 'eosio.token', 'open')`)
		var out bytes.Buffer
		cmd := exec.Command(data, "-until", `"msg_type":"data"`, "-every", "20ms", "-timeout", "30s")
		cmd.Env = append(cmd.Environ(), "EOSPARK_URL="+b.url, "EOSPARK_KEY="+b.key)
		cmd.Stdout, cmd.Stderr = &out, &out
		require.NoError(t, cmd.Start())
		b.requireChannels(t, "orders") // the client has subscribed
		b.exec(t, `UPDATE orders SET order_status = 'filled'`)
		require.NoError(t, cmd.Wait(), "%s", out.String())
		require.Regexp(t, `recv: \{"errno":0,"msg_type":"data",.*"actions":\[\{"account":"orders","name":"UPDATE","authorization":\[\{"actor":"eosio.token"`, out.String())
	})
}

// FuzzEOSParkSubscription applies frames, one per line, to a subscription
// as a connection does: it never panics, a refusal changes nothing, the
// limits hold, and what a subscribe adds matches.
func FuzzEOSParkSubscription(f *testing.F) {
	f.Add(subscribeB("a,*", "orders,bets", "UPDATE") + "\n" + unsubscribeB("a", "orders", ""))
	f.Add(subscribeB("a1,a2,a3,a4,a5", "orders", "") + "\n" + subscribeB("a6", "bets", ""))
	f.Add(subscribeB("a", "orders,bets,accounts,scores,emergency", "") + "\n" + subscribeB("a", "x1", "INSERT"))
	f.Add(subscribeB("a", "nope", "") + "\n" + unsubscribeB("a", "orders", "UPDATE") + "\n{")
	known := []string{"accounts", "bets", "emergency", "orders", "scores", "x1"}
	isKnown := func(n string) bool { _, ok := slices.BinarySearch(known, n); return ok }
	f.Fuzz(func(t *testing.T, frames string) {
		var s subsB
		for frame := range strings.SplitSeq(frames, "\n") {
			req, err := wire.DecodeB([]byte(frame))
			if err != nil {
				continue
			}
			before := s.clone()
			next, reason := s.change(req, isKnown)
			require.Equal(t, before, s.clone(), "the previous subscription is never changed")
			accounts, entries := next.count()
			require.LessOrEqual(t, accounts, wire.MaxAccountsB)
			require.LessOrEqual(t, len(next), wire.MaxContractsB)
			require.LessOrEqual(t, entries, maxEntriesB)
			if reason != "" {
				require.Equal(t, before, next.clone())
				continue
			}
			if req.Type == wire.MsgTypeSubscribe {
				e := &store.Event{Channel: req.Contracts[0], Subject: req.Accounts[0], Op: cmp.Or(req.Action, "INSERT")}
				if e.Subject == "*" {
					e.Subject = ""
				}
				require.True(t, next.match(e), "%+v", req)
			}
			for _, byAccount := range next {
				require.NotEmpty(t, byAccount)
				for _, actions := range byAccount {
					require.NotEmpty(t, actions)
				}
			}
			s = next
		}
	})
}
