package main

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/hubdev/hub/store/storetest"
)

// PostgreSQL restarts under a live stream (SPEC §2.3 "Outages"): /readyz
// says so within 2 s, the session stays open and answers pings, new
// subscribes get 1013, and after the restart the hub is ready again within
// 10 s and the session gets every event, in order, none twice.
func TestServePostgresRestartMidStream(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		stop func(*storetest.Cluster)
	}{
		{"fast shutdown", func(c *storetest.Cluster) { c.Stop() }},
		{"crash", func(c *storetest.Cluster) { c.Kill() }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			testPostgresRestart(t, tt.stop)
		})
	}
}

func testPostgresRestart(t *testing.T, stop func(*storetest.Cluster)) {
	cluster := storetest.NewCluster(t) // the test stops this server
	// The test clusters run with synchronous_commit=off: a crash would lose
	// transactions already reported committed, whose events the hub may
	// have delivered, and reuse their xids. Production keeps it on.
	conn, err := pgx.Connect(context.Background(), cluster.URL)
	require.NoError(t, err)
	_, err = conn.Exec(context.Background(), `ALTER DATABASE hub SET synchronous_commit = on`)
	require.NoError(t, err)
	require.NoError(t, conn.Close(context.Background()))
	pool := storetest.Pool(t, cluster.URL)
	key := newTenant(t, pool, "acme", 5)
	h := startInProc(t, cluster.URL, nil)
	client := &http.Client{Timeout: 2 * time.Second}
	waitStatus(t, client, h.url+"/readyz", 200, 30*time.Second)

	c := dialA(t, websocket.DefaultDialer, h.wsURL())
	c.subscribe(key, []string{"orders"}, "")
	var got []frameA
	for range 5 {
		insertOrders(t, pool, "acme", 3)
	}
	got = append(got, c.broadcasts(15, 10*time.Second)...)

	stop(cluster)
	took := waitStatus(t, client, h.url+"/readyz", http.StatusServiceUnavailable, 2*time.Second)
	t.Logf("/readyz 503 %s after PostgreSQL stopped", took)
	require.Empty(t, c.ping(5*time.Second), "the node answers pings without the database")

	// A subscribe that needs the database is told to come back later.
	late := dialA(t, websocket.DefaultDialer, h.wsURL())
	require.NoError(t, late.ws.WriteJSON(map[string]any{"type": "subscribe", "apiKey": key}))
	f := late.read(10 * time.Second)
	require.Equal(t, frameA{Type: "error", Message: "Service unavailable"}, f)
	_, _, err = late.ws.ReadMessage()
	var ce *websocket.CloseError
	require.ErrorAs(t, err, &ce)
	require.Equal(t, 1013, ce.Code)

	// Keep PostgreSQL down until the listener's reconnect backoff has
	// reached its longest wait, so the restart is found by a late attempt.
	h.waitLog(t, `msg="listener connect failed"`, 10*time.Second)
	h.waitLog(t, "attempt=6", 30*time.Second)

	require.NoError(t, cluster.Start(context.Background()))
	pool.Reset() // the test's own connections died with the server
	took = waitStatus(t, client, h.url+"/readyz", 200, 10*time.Second)
	t.Logf("/readyz 200 %s after PostgreSQL accepted connections again", took)
	require.Empty(t, c.ping(5*time.Second), "nothing was written meanwhile")
	for range 5 {
		insertOrders(t, pool, "acme", 3)
	}
	got = append(got, c.broadcasts(15, 10*time.Second)...)
	require.Empty(t, c.ping(5*time.Second), "no further (duplicate) broadcasts")
	require.Equal(t, logOrder(t, pool, "orders", "acme"), ids(got), "every event once, in position order")
}
