package api

// Tests of issue 12: nothing an unauthenticated request sends costs more
// than linear work, and no peer holds much for long before it
// authenticates.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/stretchr/testify/require"

	"github.com/hubdev/hub/hub/hubtest"
	"github.com/hubdev/hub/hub/wire"
	"github.com/hubdev/hub/store"
	"github.com/hubdev/hub/store/storetest"
)

// longChannelList is the request of issue 12: channels c00000 to c99999,
// 700 KB of query, which took 14.5 s of CPU before it was refused.
func longChannelList() string {
	var sb strings.Builder
	for i := range 100_000 {
		fmt.Fprintf(&sb, "c%05d,", i)
	}
	return sb.String()
}

func TestSSEQueryTooLong(t *testing.T) {
	t.Parallel()
	b := setupSSE(t, 0)
	list := longChannelList()
	justOver := url.Values{"channels": {strings.Repeat("c", maxQueryBytes)}}
	for _, tt := range []struct {
		name   string
		method string
		query  url.Values
		header http.Header
	}{
		{"the issue's request, no key", http.MethodGet, channelsQuery(list), nil},
		{"with a good key", http.MethodGet, channelsQuery(list), keyHeader(b.key)},
		{"just over", http.MethodGet, justOver, keyHeader(b.key)},
		{"post", http.MethodPost, justOver, keyHeader(b.key)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b.open(t, tt.method, tt.query, tt.header, "").requireError(t, msgQueryTooLong, wire.CloseTooBig)
		})
	}
	// At the bound, the query is read: here its channel is unknown.
	atBound := url.Values{"channels": {strings.Repeat("c", maxQueryBytes-len("channels="))}}
	b.get(t, atBound, keyHeader(b.key)).requireError(t, wire.UnknownChannel(atBound["channels"][0]), wire.ClosePolicy)
}

// TestQueryTooLong: every other route answers 414 before reading a query
// over maxQueryBytes; the admin API before the token check, which costs
// more than the length check.
func TestQueryTooLong(t *testing.T) {
	t.Parallel()
	pool, _ := storetest.NewPool(t)
	e := New(Config{
		Ready: func(context.Context) error { return nil }, AdminToken: adminTestToken, Admin: store.New(pool),
		Logger: slog.New(slog.DiscardHandler),
	})
	long := "?channel=" + strings.Repeat("x", maxQueryBytes)
	for _, tt := range []struct{ path, auth string }{
		{"/admin/events" + long, ""},
		{"/admin/events" + long, "Bearer " + adminTestToken},
		{"/healthz" + long, ""},
	} {
		rec := serveAdmin(e, http.MethodGet, tt.path, "", tt.auth)
		requireErrorBody(t, rec, http.StatusRequestURITooLong, msgQueryTooLong)
	}
	rec := serveAdmin(e, http.MethodGet, "/admin/events?limit=1&channel="+strings.Repeat("x", 100), "", "Bearer "+adminTestToken)
	require.Equal(t, http.StatusUnprocessableEntity, rec.Code, "a query under the bound is read")
}

// TestChannelsOnce: the subscribed reply and the connected event name
// each channel once, however often the request repeats it.
func TestChannelsOnce(t *testing.T) {
	t.Parallel()
	b := setupLimits(t, Config{}, 0)
	body := `{"apiKey":"` + b.key + `","channels":["orders","bets","orders","orders"]}`
	b.sse(t, http.MethodPost, nil, nil, body).requireConnected(t, []string{"orders", "bets"})
	b.sse(t, http.MethodGet, channelsQuery("scores,orders,scores"), keyHeader(b.key), "").requireConnected(t, []string{"scores", "orders"})
	c := b.dial(t, "/ws/subscribe", nil)
	require.NoError(t, c.WriteMessage(websocket.TextMessage, []byte(`{"type":"subscribe","apiKey":"`+b.key+`","channels":["orders","bets","orders"]}`)))
	require.NoError(t, c.SetReadDeadline(time.Now().Add(sseWait)))
	_, data, err := c.ReadMessage()
	require.NoError(t, err)
	require.JSONEq(t, `{"type":"subscribed","subscriptionId":1,"channels":["orders","bets"]}`, string(data))
}

// countingStore is the real store, counting the key lookups.
type countingStore struct {
	Store
	lookups atomic.Int64
}

func (s *countingStore) APIKeyLookup(ctx context.Context, key string) (store.APIKeyAuth, error) {
	s.lookups.Add(1)
	return s.Store.APIKeyLookup(ctx, key)
}

// countingLeases is the real node, counting the leases taken.
type countingLeases struct {
	Leases
	acquires atomic.Int64
}

func (l *countingLeases) Acquire(ctx context.Context, p store.LeaseAcquireParams) error {
	l.acquires.Add(1)
	return l.Leases.Acquire(ctx, p)
}

func (l *countingLeases) ID() string { return sseNode }

type limitsBundle struct {
	env     *hubtest.Env
	store   *countingStore
	leases  *countingLeases
	pending *pending
	conns   *Conns
	srv     *httptest.Server
	base    string // http://127.0.0.1:port
	host    string // 127.0.0.1:port
	key     string // client acme's key
}

// setupLimits serves New(cfg) on a fresh database with a client "acme"
// and one of its keys; cfg's pending counter is the bundle's. An SSE
// keep-alive of keepAlive, when set, replaces the 15 s one.
func setupLimits(t *testing.T, cfg Config, keepAlive time.Duration) *limitsBundle {
	t.Helper()
	env := hubtest.Start(t, hubtest.Options{NodeID: sseNode})
	cfg.Ready = func(context.Context) error { return nil }
	st, leases := &countingStore{Store: env.Store}, &countingLeases{Leases: env.Node}
	cfg.Hub, cfg.Store, cfg.Leases, cfg.Logger, cfg.Conns = env.Hub, st, leases, env.Log, &Conns{}
	cfg = cfg.withDefaults()
	e := New(cfg)
	if keepAlive > 0 { // in front of New's SSE routes
		s := newSSE(cfg)
		s.keepAlive = keepAlive
		e.GET(sseSubscribePath, s.handle)
		e.POST(sseSubscribePath, s.handle)
	}
	srv := httptest.NewServer(e)
	t.Cleanup(srv.Close)
	t.Cleanup(func() { // runs before srv.Close, after the clients closed
		ctx, cancel := context.WithTimeout(context.Background(), sseWait)
		defer cancel()
		require.NoError(t, cfg.Conns.Wait(ctx))
	})
	return &limitsBundle{
		env: env, store: st, leases: leases, pending: cfg.pending, conns: cfg.Conns, srv: srv, base: srv.URL,
		host: strings.TrimPrefix(srv.URL, "http://"), key: env.Key(t, "acme", 0),
	}
}

// dialFrom opens a WebSocket to path from the local address ip; a refused
// upgrade returns its response instead.
func (b *limitsBundle) dialFrom(t *testing.T, ip, path string, h http.Header) (*websocket.Conn, *http.Response) {
	t.Helper()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	ws := &websocket.Dialer{NetDialContext: d.DialContext, HandshakeTimeout: sseWait}
	c, resp, err := ws.Dial("ws://"+b.host+path, h)
	if err != nil {
		require.ErrorIs(t, err, websocket.ErrBadHandshake)
		return nil, resp
	}
	resp.Body.Close()
	t.Cleanup(func() { c.Close() })
	return c, nil
}

func (b *limitsBundle) dial(t *testing.T, path string, h http.Header) *websocket.Conn {
	t.Helper()
	c, resp := b.dialFrom(t, "127.0.0.1", path, h)
	require.Nil(t, resp, "refused")
	return c
}

// requireTooManyPending checks the 503 that refuses an upgrade.
func requireTooManyPending(t *testing.T, resp *http.Response) {
	t.Helper()
	require.NotNil(t, resp, "upgraded")
	require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	require.Equal(t, "1", resp.Header.Get("Retry-After"))
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.JSONEq(t, `{"error":"`+wire.MsgTooManyPending+`"}`, string(body))
}

// sse opens an SSE stream as sseBundle.open does.
func (b *limitsBundle) sse(t *testing.T, method string, query url.Values, h http.Header, body string) *sseClient {
	t.Helper()
	return (&sseBundle{srv: b.srv}).open(t, method, query, h, body)
}

// TestPendingCap: connections that have not authenticated are capped per
// node, whatever their transport; one that authenticates frees its place.
func TestPendingCap(t *testing.T) {
	t.Parallel()
	b := setupLimits(t, Config{MaxPending: 2, MaxPendingPerAddr: 10}, 0)
	a1 := b.dial(t, "/ws/subscribe", nil)
	a2 := b.dial(t, "/ws/subscribe", nil)
	require.Equal(t, 2, b.pending.count())

	_, resp := b.dialFrom(t, "127.0.0.1", "/ws/subscribe", nil)
	requireTooManyPending(t, resp)
	_, resp = b.dialFrom(t, "127.0.0.1", "/v1/ws?apikey="+b.key, nil)
	requireTooManyPending(t, resp)
	b.sse(t, http.MethodGet, nil, keyHeader(b.key), "").requireError(t, wire.MsgTooManyPending, wire.CloseTryAgain)

	// A subscribe authenticates a1: its place is free before the reply.
	require.NoError(t, a1.WriteMessage(websocket.TextMessage, []byte(`{"type":"subscribe","apiKey":"`+b.key+`"}`)))
	requireSubscribedA(t, a1)
	require.Equal(t, 1, b.pending.count())
	// Protocol B and SSE are pending while their request is checked.
	eos := b.dial(t, "/v1/ws?apikey="+b.key, nil)
	sendB(t, eos, subscribeB("*", "orders", ""))
	requireFrameB(t, eos, subscribedB)
	stream := b.sse(t, http.MethodGet, nil, keyHeader(b.key), "")
	stream.requireConnected(t, b.env.Hub.Channels())
	// So is a header key until it is checked.
	h := b.dial(t, "/ws/subscribe", http.Header{"X-Api-Key": {b.key}})
	requireOpenA(t, h)
	require.Equal(t, 1, b.pending.count())

	// A connection that ends unauthenticated frees its place.
	a3 := b.dial(t, "/ws/subscribe", nil)
	require.Equal(t, 2, b.pending.count())
	for _, c := range []*websocket.Conn{a1, a2, a3, eos, h} {
		require.NoError(t, c.Close())
	}
	stream.cancel()
	ctx, cancel := context.WithTimeout(context.Background(), sseWait)
	defer cancel()
	require.NoError(t, b.conns.Wait(ctx))
	require.Equal(t, 0, b.pending.count())
}

// TestPendingCapPerAddr: a remote address has its own cap, below the
// node's; another address is not refused.
func TestPendingCapPerAddr(t *testing.T) {
	t.Parallel()
	b := setupLimits(t, Config{MaxPending: 10, MaxPendingPerAddr: 1}, 0)
	b.dial(t, "/ws/subscribe", nil)
	_, resp := b.dialFrom(t, "127.0.0.1", "/ws/subscribe", nil)
	requireTooManyPending(t, resp)
	b.sse(t, http.MethodPost, nil, nil, `{"apiKey":"`+b.key+`"}`).requireError(t, wire.MsgTooManyPending, wire.CloseTryAgain)
	other, resp := b.dialFrom(t, "127.0.0.2", "/ws/subscribe", nil)
	require.Nil(t, resp, "refused from another address")
	requireOpenA(t, other)
	require.Equal(t, 2, b.pending.count())
}

// TestAddrKey: the address a pending connection counts under.
func TestAddrKey(t *testing.T) {
	t.Parallel()
	for addr, want := range map[string]string{
		"192.0.2.7:443":                  "192.0.2.7",
		"[::ffff:192.0.2.7]:443":         "192.0.2.7",
		"[::ffff:c000:207]:1":            "192.0.2.7",
		"[2001:db8:1:2:3:4:5:6]:443":     "2001:db8:1:2::/64",
		"[2001:db8:1:2::9]:80":           "2001:db8:1:2::/64",
		"[2001:db8:1:3::9]:80":           "2001:db8:1:3::/64",
		"[fe80::1%eth0]:80":              "fe80::/64",
		"[::1]:80":                       "::/64",
		"2001:db8::1":                    "2001:db8::/64", // no port
		"192.0.2.7":                      "192.0.2.7",
		"pipe":                           "pipe", // not an IP: as it is
		"[2001:db8::1]:80:80":            "[2001:db8::1]:80:80",
		"[2001:db8:ffff:ffff:1::]:65535": "2001:db8:ffff:ffff::/64",
		"[::ffff:192.0.2.7%eth0]:443":    "192.0.2.7",
		"[2001:db8:1:2:ffff::1%5]:443":   "2001:db8:1:2::/64",
	} {
		require.Equal(t, want, addrKey(addr), addr)
	}
}

// TestPendingCapPerPrefix: the addresses of one IPv6 /64 share the
// per-address cap, and an IPv4 address shares it with its IPv6-mapped
// form.
func TestPendingCapPerPrefix(t *testing.T) {
	t.Parallel()
	p := newPending(10, 1)
	_, ok := p.take("[2001:db8:0:1::1]:1000")
	require.True(t, ok)
	_, ok = p.take("[2001:db8:0:1:ffff::2]:1001")
	require.False(t, ok, "another address of the same /64")
	_, ok = p.take("[2001:db8:0:2::1]:1002")
	require.True(t, ok, "another /64")
	_, ok = p.take("[::ffff:192.0.2.1]:1003")
	require.True(t, ok)
	_, ok = p.take("192.0.2.1:1004")
	require.False(t, ok, "the same IPv4 address, unmapped")
	require.Equal(t, 3, p.count())
}

// TestSSEBodyDeadline: a POST body that does not arrive within the auth
// timeout is refused with "subscribe timeout" (1008): a body sent a byte
// at a time does not hold the handler and its pending place.
func TestSSEBodyDeadline(t *testing.T) {
	t.Parallel()
	b := setupLimits(t, Config{AuthTimeout: 200 * time.Millisecond}, 0)
	conn, err := net.Dial("tcp", b.host)
	require.NoError(t, err)
	defer conn.Close()
	_, err = fmt.Fprintf(conn, "POST /sse/subscribe HTTP/1.1\r\nHost: hub\r\nContent-Type: application/json\r\n"+
		"Content-Length: 100\r\n\r\n{\"apiKey\":")
	require.NoError(t, err)
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(sseWait)))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	require.NoError(t, err, "no answer to a stalled body")
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	events := make(chan sseEvent, 4)
	parseSSE(context.Background(), bufio.NewScanner(resp.Body), events)
	require.Equal(t, sseEvent{event: "error", data: `{"message":"subscribe timeout","code":1008}`}, <-events)
	ctx, cancel := context.WithTimeout(context.Background(), sseWait)
	defer cancel()
	require.NoError(t, b.conns.Wait(ctx))
	require.Equal(t, 0, b.pending.count())
}

// TestSSEPostStreamOutlivesBodyDeadline: the body's deadline ends with
// the body; the stream lives on past it (its keep-alive comes later).
func TestSSEPostStreamOutlivesBodyDeadline(t *testing.T) {
	t.Parallel()
	b := setupLimits(t, Config{AuthTimeout: 100 * time.Millisecond}, 500*time.Millisecond)
	c := b.sse(t, http.MethodPost, nil, nil, `{"apiKey":"`+b.key+`","channels":["orders"]}`)
	c.requireConnected(t, []string{"orders"})
	require.Equal(t, sseEvent{comment: "keep-alive"}, c.nextAny(t))
}

// requireSubscribedA reads protocol A's subscribed reply.
func requireSubscribedA(t *testing.T, c *websocket.Conn) {
	t.Helper()
	require.NoError(t, c.SetReadDeadline(time.Now().Add(sseWait)))
	_, data, err := c.ReadMessage()
	require.NoError(t, err)
	require.Contains(t, string(data), `"type":"subscribed"`)
}

// requireOpenA shows a protocol A connection answers.
func requireOpenA(t *testing.T, c *websocket.Conn) {
	t.Helper()
	require.NoError(t, c.WriteMessage(websocket.TextMessage, []byte(`{"type":"ping"}`)))
	require.NoError(t, c.SetReadDeadline(time.Now().Add(sseWait)))
	_, data, err := c.ReadMessage()
	require.NoError(t, err)
	require.JSONEq(t, `{"type":"pong"}`, string(data))
}

// waitConns waits until every connection has ended.
func (b *limitsBundle) waitConns(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), sseWait)
	defer cancel()
	require.NoError(t, b.conns.Wait(ctx))
}

// readUntilClose reads protocol A frames up to the close frame and
// returns them with the close code and reason.
func readUntilClose(t *testing.T, c *websocket.Conn) (frames []string, code int, reason string) {
	t.Helper()
	require.NoError(t, c.SetReadDeadline(time.Now().Add(sseWait)))
	for {
		_, data, err := c.ReadMessage()
		if err != nil {
			ce, ok := errors.AsType[*websocket.CloseError](err)
			require.True(t, ok, "%v", err)
			return frames, ce.Code, ce.Text
		}
		frames = append(frames, string(data))
	}
}

// TestRefusedKeyCostsOneLookup: a key that is refused costs one lookup
// and no lease, on every transport, however many requests the client
// sent behind it.
func TestRefusedKeyCostsOneLookup(t *testing.T) {
	t.Parallel()
	// The frames behind the refused one; the server may have closed
	// before they are all written, so write errors do not matter.
	sendAll := func(c *websocket.Conn, frame func() string) {
		for range 50 {
			_ = c.WriteMessage(websocket.TextMessage, []byte(frame()))
		}
	}
	randomKey := func() string { return `{"type":"subscribe","apiKey":"` + store.NewAPIKey() + `"}` }
	for _, tt := range []struct {
		name, path string
		header     http.Header
		frame      func() string
		refusal    string
	}{
		{"protocol A subscribe", "/ws/subscribe", nil, randomKey, `{"type":"error","message":"Invalid API key"}`},
		{"protocol A header key", "/ws/subscribe", http.Header{"X-Api-Key": {store.NewAPIKey()}}, randomKey,
			`{"type":"error","message":"Invalid or missing token"}`},
		{"protocol B", "/v1/ws?apikey=" + store.NewAPIKey(), nil, func() string { return subscribeB("*", "orders", "") },
			authB(wire.ErrnoForbidden, wire.MsgForbidden)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setupLimits(t, Config{}, 0)
			c := b.dial(t, tt.path, tt.header)
			sendAll(c, tt.frame)
			// The refusal, then the close; a close with frames unread may
			// reach the client as a reset instead.
			frames, err := readUntilEnd(c)
			require.False(t, isTimeout(err), "the connection stayed open")
			require.LessOrEqual(t, len(frames), 1, "%q", frames)
			for _, f := range frames {
				require.JSONEq(t, tt.refusal, f)
			}
			if ce, ok := errors.AsType[*websocket.CloseError](err); ok {
				require.Equal(t, wire.ClosePolicy, ce.Code)
			}
			b.waitConns(t)
			require.EqualValues(t, 1, b.store.lookups.Load())
			require.Zero(t, b.leases.acquires.Load())
		})
	}
	t.Run("SSE", func(t *testing.T) {
		t.Parallel()
		b := setupLimits(t, Config{}, 0)
		b.sse(t, http.MethodGet, channelsQuery("orders"), keyHeader(store.NewAPIKey()), "").requireError(t, wire.MsgInvalidAPIKey, wire.ClosePolicy)
		b.waitConns(t)
		require.EqualValues(t, 1, b.store.lookups.Load())
		require.Zero(t, b.leases.acquires.Load())
	})
}

// readUntilEnd reads frames until the connection ends, and returns them
// with the error that ended it.
func readUntilEnd(c *websocket.Conn) ([]string, error) {
	var frames []string
	if err := c.SetReadDeadline(time.Now().Add(sseWait)); err != nil {
		return nil, err
	}
	for {
		_, data, err := c.ReadMessage()
		if err != nil {
			return frames, err
		}
		frames = append(frames, string(data))
	}
}

// TestRefusalsCountAsInvalid: every refusal after which a protocol A
// connection stays open counts toward its invalid messages; the 21st
// within a minute closes it (SPEC §4.1), before as after it subscribed.
func TestRefusalsCountAsInvalid(t *testing.T) {
	t.Parallel()
	b := setupLimits(t, Config{}, 0)
	for _, tt := range []struct {
		name   string
		authed bool
		frame  string
		reply  string
	}{
		{"unknown channel", true, `{"type":"subscribe","channels":["nope"]}`, wire.UnknownChannel("nope")},
		{"invalid since", true, `{"type":"subscribe","since":"x"}`, wire.MsgInvalidSince},
		{"apiKey cannot change", true, `{"type":"subscribe","apiKey":"` + store.NewAPIKey() + `"}`, wire.MsgAPIKeyCannotChange},
		{"re-subscribe loop", false, `{"type":"subscribe","apiKey":"` + b.key + `","channels":["nope"]}`, wire.UnknownChannel("nope")},
		{"not subscribed", false, `{"type":"unsubscribe"}`, wire.MsgNotSubscribed},
		{"invalid message, as before", false, `{"type":"nope"}`, wire.MsgInvalidMessage},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := b.dial(t, "/ws/subscribe", nil)
			if tt.authed {
				require.NoError(t, c.WriteMessage(websocket.TextMessage, []byte(`{"type":"subscribe","apiKey":"`+b.key+`"}`)))
				requireSubscribedA(t, c)
			}
			want := `{"type":"error","message":"` + tt.reply + `"}`
			for i := range maxInvalid {
				require.NoError(t, c.WriteMessage(websocket.TextMessage, []byte(tt.frame)))
				require.NoError(t, c.SetReadDeadline(time.Now().Add(sseWait)))
				_, data, err := c.ReadMessage()
				require.NoError(t, err, "refusal %d", i+1)
				require.Equal(t, want, string(data), "refusal %d", i+1)
			}
			require.NoError(t, c.WriteMessage(websocket.TextMessage, []byte(tt.frame)))
			frames, code, reason := readUntilClose(t, c)
			require.Equal(t, []string{`{"type":"error","message":"too many invalid messages"}`}, frames)
			require.Equal(t, wire.ClosePolicy, code)
			require.Equal(t, wire.MsgTooManyInvalid, reason)
		})
	}
}

// FuzzPending: whatever the order of takes and releases, neither cap is
// ever passed, a refusal changes nothing, and every place comes back.
func FuzzPending(f *testing.F) {
	f.Add([]byte{0, 0, 1, 0x80, 2, 0x81, 0x82}, 3, 2)
	f.Add([]byte{0, 0, 0, 0}, 1, 1)
	f.Fuzz(func(t *testing.T, ops []byte, most, perAddr int) {
		if most < 1 || most > 8 || perAddr < 1 || perAddr > 8 {
			return
		}
		p := newPending(most, perAddr)
		var held []*pendingSlot
		byAddr := map[string]int{}
		for _, op := range ops {
			if op&0x80 != 0 && len(held) > 0 { // release the slot at that index, twice
				i := int(op&0x7f) % len(held)
				s := held[i]
				s.release()
				s.release()
				byAddr[s.addr]--
				held = slices.Delete(held, i, i+1)
				continue
			}
			addr := fmt.Sprintf("10.0.0.%d:%d", op%4, op) // four addresses, ports differ
			s, ok := p.take(addr)
			host := addrKey(addr)
			require.Equal(t, len(held) < most && byAddr[host] < perAddr, ok)
			if ok {
				held = append(held, s)
				byAddr[host]++
			}
			require.Equal(t, len(held), p.count())
		}
		for _, s := range held {
			s.release()
		}
		require.Zero(t, p.count())
		require.Empty(t, p.byAddr)
	})
}
