package main

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/stretchr/testify/require"

	"github.com/hubdev/hub/store"
	"github.com/hubdev/hub/store/storetest"
)

// A graceful stop closes WebSocket sessions with 1012, so that clients
// resume elsewhere, and deletes the node's leases before the process ends.
func TestServeGracefulStopClosesSessions(t *testing.T) {
	t.Parallel()
	pool, u := storetest.NewPool(t)
	st := store.New(pool)
	ctx := context.Background()
	require.NoError(t, st.ClientEnsure(ctx, "acme"))
	_, key, err := st.APIKeyCreate(ctx, store.APIKeyCreateParams{Client: "acme"})
	require.NoError(t, err)

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	stdout := newOutput()
	env := envOf(map[string]string{"DATABASE_URL": u, "HUB_ADMIN_TOKEN": "test-admin-token-0123456789", "HUB_ADDR": "127.0.0.1:0"})
	stopped := make(chan struct{})
	var runErr error
	go func() { // ends when runCtx is cancelled below
		defer close(stopped)
		runErr = run(runCtx, nil, env, stdout, io.MultiWriter(newOutput(), testLog{t}))
	}()
	url := stdout.waitLine(t, "listening on", stopped)
	waitOK(t, url+"/readyz")

	ws, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(url, "http")+"/ws/subscribe", nil)
	require.NoError(t, err)
	defer ws.Close()
	require.NoError(t, ws.WriteJSON(map[string]any{"type": "subscribe", "apiKey": key, "channels": []string{"orders"}}))
	require.NoError(t, ws.SetReadDeadline(time.Now().Add(10*time.Second)))
	var reply struct{ Type string }
	require.NoError(t, ws.ReadJSON(&reply))
	require.Equal(t, "subscribed", reply.Type)
	var leases int
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM hub.leases`).Scan(&leases))
	require.Equal(t, 1, leases)

	cancel()
	_, _, err = ws.ReadMessage()
	var closeErr *websocket.CloseError
	require.ErrorAs(t, err, &closeErr)
	require.Equal(t, 1012, closeErr.Code, "service restart: reconnect elsewhere and resume")
	select {
	case <-stopped:
		require.NoError(t, runErr)
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return within 10s of cancellation")
	}
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM hub.leases`).Scan(&leases))
	require.Zero(t, leases, "the node's leases are gone when it has stopped")
}
