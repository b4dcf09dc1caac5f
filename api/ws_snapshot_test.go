package api_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/hubdev/hub/api"
	"github.com/hubdev/hub/hub"
)

// TestWSSnapshot: the current rows the key may see, snapshot_end, then the
// changes (SPEC §10); a resume from snapshot_end's id repeats none of the
// rows' changes.
func TestWSSnapshot(t *testing.T) {
	t.Parallel()
	b := setupWS(t, api.Config{})
	b.exec(t, `INSERT INTO orders (client, account_id) VALUES ('acme', 'A1'), ('acme', 'A2'), ('other', 'O1'), ('', 'none')`)
	b.exec(t, `INSERT INTO scores (fixture_id) VALUES ('F1')`)
	c := b.dial(t)
	send(t, c, `{"type":"subscribe","apiKey":"`+b.key+`","channels":["orders","scores"],"snapshot":true}`)
	require.Equal(t, map[string]any{"type": "subscribed", "subscriptionId": 1.0, "channels": []any{"orders", "scores"}, "snapshot": true}, read(t, c))
	rows := map[string]bool{}
	for range 3 {
		f := read(t, c)
		require.Equal(t, "snapshot", f["type"])
		require.NotContains(t, f, "id", "a snapshot row is no resume point")
		p := f["payload"].(map[string]any)
		if f["channel"] == "scores" {
			rows[p["fixtureId"].(string)] = true
			continue
		}
		require.Equal(t, "orders", f["channel"])
		require.Equal(t, "acme", p["client"], "only the key's own rows of a tenant channel")
		rows[p["accountId"].(string)] = true
	}
	require.Equal(t, map[string]bool{"A1": true, "A2": true, "F1": true}, rows)
	end := read(t, c)
	require.Equal(t, "snapshot_end", end["type"])
	pos := end["id"].(string)

	b.exec(t, `UPDATE orders SET order_status = 'filled' WHERE account_id = 'A1'`)
	f := read(t, c)
	require.Equal(t, "broadcast", f["type"])
	require.Equal(t, map[string]any{"orderStatus": nil}, f["old"])
	changed := f["id"].(string)

	resumed := b.dial(t)
	send(t, resumed, `{"type":"subscribe","apiKey":"`+b.key+`","channels":["orders"],"since":"`+pos+`"}`)
	require.Equal(t, true, read(t, resumed)["recovered"])
	require.Equal(t, changed, read(t, resumed)["id"], "the change after the snapshot, and nothing before it")
	requireOpen(t, resumed)
}

func TestWSSnapshotRefused(t *testing.T) {
	t.Parallel()
	b := setupWSHub(t, api.Config{}, hub.Config{SnapshotMaxRows: 1})
	c := b.dial(t)
	send(t, c, `{"type":"subscribe","apiKey":"`+b.key+`","snapshot":true,"since":"1-1"}`)
	requireError(t, c, "snapshot and since are exclusive")
	requireOpen(t, c)

	b.exec(t, `INSERT INTO orders (client, account_id) VALUES ('acme', 'A1'), ('acme', 'A2')`)
	send(t, c, `{"type":"subscribe","apiKey":"`+b.key+`","channels":["orders"],"snapshot":true}`)
	requireError(t, c, "Snapshot too large")
	requireOpen(t, c)

	leases, err := b.store.LeaseList(context.Background())
	require.NoError(t, err)
	require.Empty(t, leases, "a refused subscribe holds nothing")
	send(t, c, `{"type":"subscribe","apiKey":"`+b.key+`","channels":["scores"],"snapshot":true}`)
	require.Equal(t, "subscribed", read(t, c)["type"])
	require.Equal(t, "snapshot_end", read(t, c)["type"], "no scores: an empty snapshot")
}

// TestWSFilter: a row filter per channel (SPEC §10), its refusals, which
// leave the connection open, and the filter over SSE's query.
func TestWSFilter(t *testing.T) {
	t.Parallel()
	b := setupWS(t, api.Config{})
	c := b.dial(t)
	for _, tt := range []struct{ filter, msg string }{
		{`{"nope":{"a":[1]}}`, "Unknown channel: nope"},
		{`{"scores":{"fixtureId":["F1"]}}`, "Invalid filter"}, // attached, not subscribed
		{`{"orders":{"accountId":"A1"}}`, "Invalid filter"},
		{`{"orders":{"accountId":[{"x":1}]}}`, "Invalid filter"},
		{`"orders"`, "Invalid filter"},
	} {
		send(t, c, `{"type":"subscribe","apiKey":"`+b.key+`","channels":["orders"],"filter":`+tt.filter+`}`)
		requireError(t, c, tt.msg)
	}
	requireOpen(t, c)
	send(t, c, `{"type":"subscribe","apiKey":"`+b.key+`","channels":["orders"],"filter":{"orders":{"accountId":["A2"]}}}`)
	require.Equal(t, "subscribed", read(t, c)["type"])
	b.exec(t, `INSERT INTO orders (client, account_id) VALUES ('acme', 'A1'), ('acme', 'A2')`)
	f := read(t, c)
	require.Equal(t, "A2", f["payload"].(map[string]any)["accountId"])
	requireOpen(t, c) // and nothing before the pong: A1 was filtered out
}
