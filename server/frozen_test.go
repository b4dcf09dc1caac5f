package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/hubdev/hub/store/storetest"
)

// admin sends an admin API request and returns its status and body.
func admin(t *testing.T, method, url string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+testAdminToken)
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var body json.RawMessage
	_ = json.NewDecoder(resp.Body).Decode(&body)
	return resp.StatusCode, body
}

// listedOn says whether GET /admin/connections lists a connection of
// client on node.
func listedOn(t *testing.T, base, node, client string) bool {
	t.Helper()
	status, body := admin(t, http.MethodGet, base+"/admin/connections")
	require.Equal(t, http.StatusOK, status)
	var list struct {
		Connections []struct{ Node, Client string }
	}
	require.NoError(t, json.Unmarshal(body, &list))
	for _, c := range list.Connections {
		if c.Node == node && c.Client == client {
			return true
		}
	}
	return false
}

func keyID(t *testing.T, pool *pgxpool.Pool, client string) int64 {
	t.Helper()
	var id int64
	require.NoError(t, pool.QueryRow(context.Background(), `SELECT id FROM hub.api_keys WHERE client = $1`, client).Scan(&id))
	return id
}

// requireClosed reads c until the server closes it, and requires a policy
// close with reason within the time given.
func requireClosed(t *testing.T, c *clientA, reason string, within time.Duration) {
	t.Helper()
	require.NoError(t, c.ws.SetReadDeadline(time.Now().Add(within)))
	for {
		_, _, err := c.ws.ReadMessage()
		if err == nil {
			continue
		}
		var ce *websocket.CloseError
		require.ErrorAs(t, err, &ce, "closed by the server within %s", within)
		require.Equal(t, websocket.ClosePolicyViolation, ce.Code)
		require.Equal(t, reason, ce.Text)
		return
	}
}

// A node frozen (SIGSTOP: a paused VM, an I/O stall) past the age at which
// the other nodes forget it loses its row and its leases to their
// heartbeat. Resumed, its connections count, are listed and are closed on
// revocation again, including the revocation made while it was frozen.
func TestServeFrozenNodeKeepsItsConnections(t *testing.T) {
	t.Parallel()
	bin := buildHub(t)
	u := storetest.NewDB(t)
	pool := storetest.Pool(t, u)
	key := newTenant(t, pool, "acme", 1)
	early := newTenant(t, pool, "beta", 1)
	nodes := startNodes(t, bin, u, "node-a", "node-b")
	a, b := nodes[0], nodes[1]
	onA := dialA(t, websocket.DefaultDialer, a.wsURL())
	onA.subscribe(key, []string{"orders"}, "")
	earlyOnA := dialA(t, websocket.DefaultDialer, a.wsURL())
	earlyOnA.subscribe(early, []string{"orders"}, "")
	require.True(t, listedOn(t, b.url, "node-a", "acme"))

	require.NoError(t, a.cmd.Process.Signal(syscall.SIGSTOP))
	t.Cleanup(func() { _ = a.cmd.Process.Signal(syscall.SIGCONT) })
	// Frozen past the cleanup age: its last heartbeat is made a minute
	// older than it is (the node cannot renew it), and node B's next
	// heartbeat forgets node A with its leases.
	require.Eventually(t, func() bool {
		// Again each time: a heartbeat node A sent just before it froze
		// may land after the first.
		_, err := pool.Exec(context.Background(), `UPDATE hub.nodes SET heartbeat_at = now() - interval '2 minutes' WHERE node = 'node-a'`)
		require.NoError(t, err)
		var n int
		require.NoError(t, pool.QueryRow(context.Background(), `SELECT count(*) FROM hub.nodes WHERE node = 'node-a'`).Scan(&n))
		return n == 0
	}, 10*time.Second, 20*time.Millisecond, "node B's heartbeat forgets node A")
	status, _ := admin(t, http.MethodDelete, fmt.Sprintf("%s/admin/keys/%d", b.url, keyID(t, pool, "beta")))
	require.Equal(t, http.StatusNoContent, status)

	require.NoError(t, a.cmd.Process.Signal(syscall.SIGCONT))
	resumed := time.Now()
	requireClosed(t, earlyOnA, "api key revoked", 5*time.Second)
	require.Eventually(t, func() bool { return listedOn(t, b.url, "node-a", "acme") }, 5*time.Second, 20*time.Millisecond,
		"the resumed node's connection is listed again")
	t.Logf("listed again %s after the resume", time.Since(resumed).Round(time.Millisecond))
	refused := dialA(t, websocket.DefaultDialer, b.wsURL())
	require.NoError(t, refused.ws.WriteJSON(map[string]any{"type": "subscribe", "apiKey": key}))
	require.Equal(t, frameA{Type: "error", Message: "Connection limit exceeded"}, refused.read(10*time.Second),
		"the resumed node's connection counts again")

	status, _ = admin(t, http.MethodDelete, fmt.Sprintf("%s/admin/keys/%d", b.url, keyID(t, pool, "acme")))
	require.Equal(t, http.StatusNoContent, status)
	requireClosed(t, onA, "api key revoked", 2*time.Second)
	b.stop(t)
	a.stop(t)
}
