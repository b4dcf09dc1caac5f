package hub_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hubdev/hub/hub"
	"github.com/hubdev/hub/hub/wire"
	"github.com/hubdev/hub/store"
)

// subscribeFiltered connects a session of client to orders with filter
// (JSON; "" for none), a snapshot or a since.
func subscribeFiltered(t *testing.T, h *hub.Hub, client, filter string, snapshot bool, since *store.Position) *frameConn {
	t.Helper()
	f, err := wire.ParseFilter(json.RawMessage(filter))
	require.NoError(t, err)
	c := newFrameConn()
	c.sess = h.Connect(hub.ConnectParams{Conn: c, Protocol: hub.ProtocolA, Credits: 16})
	t.Cleanup(c.sess.Gone)
	_, err = c.sess.Subscribe(context.Background(), hub.Subscription{
		Client: client, Channels: []string{"orders"}, Filter: f, Snapshot: snapshot, Since: since,
		Reply: func(bool) []byte { return []byte(`{"type":"subscribed"}`) },
	})
	require.NoError(t, err)
	return c
}

func accounts(frames []snapFrame, types ...string) []string {
	var out []string
	for _, f := range frames {
		for _, typ := range types {
			if f.Type == typ {
				out = append(out, f.Payload["accountId"].(string))
			}
		}
	}
	return out
}

// TestFilter: a row filter narrows live events, catch-ups and snapshots
// alike, never widens what a client sees, and is checked once per event
// and distinct filter, however many sessions have it (SPEC §10).
func TestFilter(t *testing.T) {
	b := setupHub(t, hub.Config{})
	ctx := context.Background()
	const onA1 = `{"orders":{"accountId":["A1"]}}`
	first := subscribeFiltered(t, b.hub, "acme", onA1, false, nil)
	second := subscribeFiltered(t, b.hub, "acme", `{"orders":{"accountId":["A1"]}}`, false, nil) // equal, parsed apart
	all := subscribeFiltered(t, b.hub, "acme", "", false, nil)
	widen := subscribeFiltered(t, b.hub, "acme", `{"orders":{"client":["other"]}}`, false, nil)
	before := b.hub.Stats().FilterChecks

	_, err := b.pool.Exec(ctx, `INSERT INTO orders (client, account_id) VALUES ('acme', 'A1'), ('acme', 'A2'), ('other', 'A1')`)
	require.NoError(t, err)
	got := all.waitFor(t, 30*time.Second, "acme's two orders", func(f []snapFrame) bool { return len(f) == 3 })
	require.Equal(t, []string{"A1", "A2"}, accounts(got, "broadcast"))
	for _, c := range []*frameConn{first, second} {
		got := c.waitFor(t, 30*time.Second, "A1's order", func(f []snapFrame) bool { return len(f) == 2 })
		require.Equal(t, []string{"A1"}, accounts(got, "broadcast"))
	}
	require.EqualValues(t, 4, b.hub.Stats().FilterChecks-before,
		"2 of acme's events × 2 distinct filters, not × 3 filtered sessions")

	// The same filter on a snapshot and on a resume from before the rows.
	snap := subscribeFiltered(t, b.hub, "acme", onA1, true, nil)
	got = snap.waitFor(t, 30*time.Second, "snapshot_end", func(f []snapFrame) bool { return snapshotEnd(f) >= 0 })
	require.Equal(t, []string{"A1"}, accounts(got, "snapshot", "broadcast"))
	replay := subscribeFiltered(t, b.hub, "acme", onA1, false, &store.Position{})
	got = replay.waitFor(t, 30*time.Second, "the replay", func(f []snapFrame) bool { return len(f) >= 2 })
	require.Equal(t, []string{"A1"}, accounts(got, "broadcast"))

	// A filter that names another client's rows shows none of them.
	_, err = b.pool.Exec(ctx, `INSERT INTO orders (client, account_id) VALUES ('acme', 'A3')`)
	require.NoError(t, err)
	all.waitFor(t, 30*time.Second, "A3", func(f []snapFrame) bool { return len(f) == 4 })
	// Every event was queued for the sessions before all got A3; a frame
	// queued now comes after any of them.
	widen.sess.Send([]byte(`{"type":"marker"}`))
	got = widen.waitFor(t, 30*time.Second, "the marker", func(f []snapFrame) bool { return f[len(f)-1].Type == "marker" })
	require.Len(t, got, 2, "the reply and the marker: a filter never widens what a client sees")
}
