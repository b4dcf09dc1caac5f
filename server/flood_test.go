package main

import (
	"context"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/hubdev/hub/store/storetest"
)

// flood keeps n clients subscribing with key and n admin requests creating
// keys, each retried as soon as it ends, until stop is called.
func flood(t *testing.T, h *inProcHub, key string, n int) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	loop := func(once func()) {
		wg.Add(1)
		go func() { // ends when stop cancels ctx
			defer wg.Done()
			for ctx.Err() == nil {
				once()
			}
		}()
	}
	subscribe := func() {
		ws, _, err := websocket.DefaultDialer.DialContext(ctx, h.wsURL(), nil)
		if err != nil {
			return
		}
		defer ws.Close()
		unblock := context.AfterFunc(ctx, func() { ws.Close() })
		defer unblock()
		if ws.WriteJSON(map[string]any{"type": "subscribe", "apiKey": key}) == nil {
			_, _, _ = ws.ReadMessage()
		}
	}
	createKey := func() {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.url+"/admin/clients/flood/keys", strings.NewReader(`{"label":"flood"}`))
		if err != nil {
			return
		}
		req.Header.Set("Authorization", "Bearer "+testAdminToken)
		req.Header.Set("Content-Type", "application/json")
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}
	for range n {
		loop(subscribe)
		loop(createKey)
	}
	return func() { cancel(); wg.Wait() }
}

// A flood of slow subscribes and admin requests takes every connection of
// the pool for client traffic: here they all wait on a lock of the API
// keys' table that the test holds. The heartbeat, the reader and /readyz
// have connections of their own, so the node's heartbeat stays fresh and
// a change is still delivered at once.
func TestServeFloodCannotStallHeartbeatOrReader(t *testing.T) {
	t.Parallel()
	cluster := storetest.NewCluster(t) // the test holds a transaction open
	pool := storetest.Pool(t, cluster.URL)
	ctx := context.Background()
	key := newTenant(t, pool, "acme", 5)
	floodKey := newTenant(t, pool, "flood", 1000)
	h := startInProc(t, cluster.URL, map[string]string{"HUB_NODE_ID": "flooded"})
	client := &http.Client{Timeout: 2 * time.Second}
	waitStatus(t, client, h.url+"/readyz", 200, 30*time.Second)
	c := dialA(t, websocket.DefaultDialer, h.wsURL())
	c.subscribe(key, []string{"orders"}, "")

	// EXCLUSIVE blocks what subscribes (FOR NO KEY UPDATE) and key creation
	// (INSERT) need, not plain reads; and it takes no transaction id, so it
	// holds no event back from the reader (SPEC §2.3).
	locker, err := pgx.Connect(ctx, cluster.URL)
	require.NoError(t, err)
	defer locker.Close(ctx)
	tx, err := locker.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(ctx) }()
	_, err = tx.Exec(ctx, `LOCK TABLE hub.api_keys IN EXCLUSIVE MODE`)
	require.NoError(t, err)
	var xid *string
	require.NoError(t, tx.QueryRow(ctx, `SELECT pg_current_xact_id_if_assigned()::text`).Scan(&xid))
	require.Nil(t, xid)

	stop := flood(t, h, floodKey, 4*runtime.NumCPU()+4)
	defer stop()
	// Every connection of the client pool (pgx's default size: 4 or the
	// number of CPUs) is waiting on the lock.
	poolSize := max(4, runtime.NumCPU())
	require.Eventually(t, func() bool {
		var waiting int
		require.NoError(t, pool.QueryRow(ctx, `
			SELECT count(*) FROM pg_stat_activity
			WHERE application_name = 'hub' AND wait_event_type = 'Lock'`).Scan(&waiting))
		return waiting >= poolSize
	}, 10*time.Second, 20*time.Millisecond, "the flood takes every client connection")

	for i := range 4 {
		insertOrders(t, pool, "acme", 1)
		start := time.Now()
		c.broadcasts(1, 2*time.Second)
		var age time.Duration
		require.NoError(t, pool.QueryRow(ctx, `SELECT now() - heartbeat_at FROM hub.nodes WHERE node = 'flooded'`).Scan(&age))
		require.Less(t, age, 3*time.Second, "the heartbeat stays fresh during the flood (round %d)", i)
		waitStatus(t, client, h.url+"/readyz", 200, time.Second)
		t.Logf("round %d: delivered in %s, heartbeat %s old", i, time.Since(start).Round(time.Millisecond), age.Round(time.Millisecond))
		time.Sleep(time.Second) // spreads the rounds over the flood; not synchronisation
	}
}
