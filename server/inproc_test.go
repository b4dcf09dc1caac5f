package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/hubdev/hub/store"
)

const testAdminToken = "test-admin-token-0123456789"

// inProcHub is a hub run() in this process.
type inProcHub struct {
	url     string // http(s)://127.0.0.1:port
	stderr  *output
	stopped chan struct{}
	err     error // run's result, set before stopped closes
	cancel  context.CancelFunc
}

// startInProc runs the hub in-process against databaseURL with extra env
// on top of HUB_ADDR=127.0.0.1:0 and the admin token; it stops when t ends.
func startInProc(t *testing.T, databaseURL string, extra map[string]string) *inProcHub {
	t.Helper()
	env := map[string]string{"DATABASE_URL": databaseURL, "HUB_ADMIN_TOKEN": testAdminToken, "HUB_ADDR": "127.0.0.1:0"}
	for k, v := range extra {
		env[k] = v
	}
	ctx, cancel := context.WithCancel(context.Background())
	h := &inProcHub{stderr: newOutput(), stopped: make(chan struct{}), cancel: cancel}
	stdout := newOutput()
	go func() { // ends when cancel is called, at the latest in the cleanup below
		defer close(h.stopped)
		h.err = run(ctx, nil, envOf(env), stdout, io.MultiWriter(h.stderr, testLog{t}))
	}()
	t.Cleanup(func() { h.stop(t) })
	h.url = stdout.waitLine(t, "listening on", h.stopped)
	return h
}

// waitLog waits until the hub's log holds substr, failing t after within.
func (h *inProcHub) waitLog(t *testing.T, substr string, within time.Duration) {
	t.Helper()
	timeout := time.NewTimer(within)
	defer timeout.Stop()
	for {
		h.stderr.mu.Lock()
		found, grew := strings.Contains(h.stderr.buf.String(), substr), h.stderr.grew
		h.stderr.mu.Unlock()
		if found {
			return
		}
		select {
		case <-grew:
		case <-timeout.C:
			t.Fatalf("the hub logged no %q within %s", substr, within)
		}
	}
}

// stop cancels run and requires it to return cleanly within 10 s.
func (h *inProcHub) stop(t *testing.T) {
	t.Helper()
	h.cancel()
	select {
	case <-h.stopped:
		require.NoError(t, h.err)
	case <-time.After(10 * time.Second):
		t.Error("run did not return within 10s of cancellation")
	}
}

func (h *inProcHub) wsURL() string { return "ws" + strings.TrimPrefix(h.url, "http") + "/ws/subscribe" }

// waitStatus polls url until it answers want, failing t after within.
// It returns how long that took.
func waitStatus(t *testing.T, client *http.Client, url string, want int, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	var last string
	for {
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == want {
				return time.Since(start)
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		if time.Since(start) > within {
			t.Fatalf("%s did not answer %d within %s (last: %s)", url, want, within, last)
		}
		<-tick.C
	}
}

// newTenant creates a client and a key of it with maxConns connections.
func newTenant(t *testing.T, pool *pgxpool.Pool, name string, maxConns int) string {
	t.Helper()
	ctx := context.Background()
	st := store.New(pool)
	require.NoError(t, st.ClientEnsure(ctx, name))
	_, key, err := st.APIKeyCreate(ctx, store.APIKeyCreateParams{Client: name, MaxConnections: maxConns})
	require.NoError(t, err)
	return key
}

// frameA is a protocol A frame as a test reads it.
type frameA struct {
	Type      string          `json:"type"`
	ID        string          `json:"id"`
	Channel   string          `json:"channel"`
	Event     string          `json:"event"`
	Message   string          `json:"message"`
	Recovered *bool           `json:"recovered"`
	Payload   json.RawMessage `json:"payload"`
	Old       json.RawMessage `json:"old"`
}

// clientA is a protocol A test client.
type clientA struct {
	t  *testing.T
	ws *websocket.Conn
}

func dialA(t *testing.T, d *websocket.Dialer, url string) *clientA {
	t.Helper()
	ws, _, err := d.Dial(url, nil)
	require.NoError(t, err)
	t.Cleanup(func() { ws.Close() })
	return &clientA{t: t, ws: ws}
}

// read returns the next frame other than a heartbeat, failing the test
// after within.
func (c *clientA) read(within time.Duration) frameA {
	c.t.Helper()
	require.NoError(c.t, c.ws.SetReadDeadline(time.Now().Add(within)))
	for {
		var f frameA
		require.NoError(c.t, c.ws.ReadJSON(&f))
		if f.Type != "heartbeat" {
			return f
		}
	}
}

// subscribe subscribes to channels (since: "" for none) and requires the
// reply to be "subscribed".
func (c *clientA) subscribe(key string, channels []string, since string) frameA {
	c.t.Helper()
	req := map[string]any{"type": "subscribe", "apiKey": key, "channels": channels}
	if since != "" {
		req["since"] = since
	}
	require.NoError(c.t, c.ws.WriteJSON(req))
	f := c.read(10 * time.Second)
	require.Equal(c.t, "subscribed", f.Type, "reply to subscribe: %+v", f)
	return f
}

// ping sends a protocol A ping and returns the broadcasts that came before
// the pong.
func (c *clientA) ping(within time.Duration) []frameA {
	c.t.Helper()
	require.NoError(c.t, c.ws.WriteJSON(map[string]string{"type": "ping"}))
	var before []frameA
	for {
		f := c.read(within)
		if f.Type == "pong" {
			return before
		}
		require.Equal(c.t, "broadcast", f.Type, "frame before the pong: %+v", f)
		before = append(before, f)
	}
}

// broadcasts reads until it has n broadcasts.
func (c *clientA) broadcasts(n int, within time.Duration) []frameA {
	c.t.Helper()
	deadline := time.Now().Add(within)
	var out []frameA
	for len(out) < n {
		f := c.read(time.Until(deadline))
		require.Equal(c.t, "broadcast", f.Type, "frame %d of %d: %+v", len(out), n, f)
		out = append(out, f)
	}
	return out
}

// ids are the frames' positions.
func ids(frames []frameA) []string {
	out := make([]string, len(frames))
	for i, f := range frames {
		out[i] = f.ID
	}
	return out
}

// logOrder is the positions of the tenant's events on channel in the log,
// in (xid, id) order.
func logOrder(t *testing.T, pool *pgxpool.Pool, channel, client string) []string {
	t.Helper()
	rows, err := pool.Query(context.Background(), `
		SELECT e.xid::text || '-' || e.id FROM hub.events e
		WHERE e.channel = $1 AND e.client = $2 ORDER BY e.xid, e.id`, channel, client)
	require.NoError(t, err)
	defer rows.Close()
	var out []string
	for rows.Next() {
		var p string
		require.NoError(t, rows.Scan(&p))
		out = append(out, p)
	}
	require.NoError(t, rows.Err())
	return out
}

// insertOrders commits one transaction of n orders of client.
func insertOrders(t *testing.T, pool *pgxpool.Pool, client string, n int) {
	t.Helper()
	_, err := pool.Exec(context.Background(),
		`INSERT INTO orders (client, account_id, order_status) SELECT $1, 'acc-' || g, 'open' FROM generate_series(1, $2) g`, client, n)
	require.NoError(t, err)
}

// metric returns the value of an unlabelled series from /metrics.
func metric(t *testing.T, client *http.Client, base, name string) float64 {
	t.Helper()
	resp, err := client.Get(base + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			require.NoError(t, err)
			return f
		}
	}
	require.NoError(t, sc.Err())
	t.Fatalf("no series %s in /metrics", name)
	return 0
}

// tlsClient is an HTTP client that trusts cfg's roots.
func tlsClient(cfg *tls.Config) *http.Client {
	return &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}
}
