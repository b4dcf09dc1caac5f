package main

import (
	"context"
	"errors"
	"net"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/stretchr/testify/require"

	"github.com/hubdev/hub/store/storetest"
)

// Two nodes share one database; the node holding a key's only connection
// is killed with SIGKILL during a stream. Its lease stops counting within
// 15 s (SPEC §3), so the client moves to the other node, resumes with
// since and ends up with every event once, in position order.
func TestServeNodeKilledClientMovesToOtherNode(t *testing.T) {
	t.Parallel()
	bin := buildHub(t)
	u := storetest.NewDB(t)
	pool := storetest.Pool(t, u)
	key := newTenant(t, pool, "acme", 1)
	nodes := startNodes(t, bin, u, "node-a", "node-b")
	a, b := nodes[0], nodes[1]

	onA := dialA(t, websocket.DefaultDialer, a.wsURL())
	onA.subscribe(key, []string{"orders"}, "")
	refused := dialA(t, websocket.DefaultDialer, b.wsURL())
	require.NoError(t, refused.ws.WriteJSON(map[string]any{"type": "subscribe", "apiKey": key}))
	require.Equal(t, frameA{Type: "error", Message: "Connection limit exceeded"}, refused.read(10*time.Second),
		"the limit counts across nodes")

	// A writer commits a transaction every 10 ms until the test stops it.
	ctx, stopWriting := context.WithCancel(context.Background())
	var writer sync.WaitGroup
	var writeErr error
	writer.Add(1)
	go func() { // ends when stopWriting is called
		defer writer.Done()
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			// Not ctx: a cancelled INSERT may still commit after Exec
			// returns, behind the test's look at the log.
			if _, err := pool.Exec(context.Background(), `INSERT INTO orders (client, order_status) VALUES ('acme', 'open')`); err != nil {
				writeErr = err
				return
			}
		}
	}()
	t.Cleanup(func() { stopWriting(); writer.Wait() })

	got := onA.broadcasts(20, 10*time.Second)
	require.NoError(t, a.cmd.Process.Signal(syscall.SIGKILL))
	killed := time.Now()
	<-a.exited
	// Whatever node A had sent before it died may still be in the socket.
	for {
		require.NoError(t, onA.ws.SetReadDeadline(time.Now().Add(5*time.Second)))
		var f frameA
		if err := onA.ws.ReadJSON(&f); err != nil {
			var ne net.Error
			require.False(t, errors.As(err, &ne) && ne.Timeout(), "the dead node's connection is closed by the kernel")
			break
		}
		if f.Type == "broadcast" {
			got = append(got, f)
		}
	}

	// Reconnect to node B until the dead node's lease no longer counts.
	var onB *clientA
	for onB == nil {
		require.Less(t, time.Since(killed), 15*time.Second, "a crashed node's lease still counts after 15s")
		c := dialA(t, websocket.DefaultDialer, b.wsURL())
		require.NoError(t, c.ws.WriteJSON(map[string]any{"type": "subscribe", "apiKey": key, "channels": []string{"orders"}, "since": got[len(got)-1].ID}))
		f := c.read(10 * time.Second)
		switch {
		case f.Type == "subscribed":
			require.NotNil(t, f.Recovered)
			require.True(t, *f.Recovered, "the resume point is in the log")
			onB = c
		case f.Type == "error" && f.Message == "Connection limit exceeded":
			c.ws.Close()
			time.Sleep(250 * time.Millisecond) // retry pacing, as a real client's backoff; not synchronisation
		default:
			t.Fatalf("unexpected reply %+v", f)
		}
	}
	t.Logf("accepted on node B %s after node A was killed", time.Since(killed).Round(time.Millisecond))

	got = append(got, onB.broadcasts(20, 10*time.Second)...)
	stopWriting()
	writer.Wait()
	require.NoError(t, writeErr)
	want := logOrder(t, pool, "orders", "acme")
	got = append(got, onB.broadcasts(len(want)-len(got), 10*time.Second)...)
	require.Empty(t, onB.ping(5*time.Second), "nothing more, nothing twice")
	require.Equal(t, want, ids(got), "every event once, in position order, across the move")
	b.stop(t)
}
