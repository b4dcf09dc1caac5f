package hub_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/hubdev/hub/hub"
)

// An event of a tenant channel without a client is nobody's, whatever the
// log row says (SPEC §2.2): rows written into hub.events by hand with an
// empty or NULL client, or on a channel that is not attached, reach no
// subscriber, live or in a replay. A global channel's event reaches all.
func TestTenantChannelEventWithoutClient(t *testing.T) {
	b := setupHub(t, hub.Config{})
	subs := []hub.Subscription{
		{Client: "acme", All: true},
		{Client: "acme", Channels: []string{"orders", "scores"}},
		{Client: "beta", Channels: []string{"orders", "bets", "scores"}},
	}
	var live []*fakeConn
	for _, sub := range subs {
		c, _ := b.connect(t, sub)
		live = append(live, c)
	}
	before, err := b.store.EventNewest(context.Background())
	require.NoError(t, err)

	b.exec(t, `INSERT INTO hub.events (channel, op, client, payload) VALUES
		('orders', 'INSERT', '', '{"orderId": 1, "client": ""}'),
		('orders', 'INSERT', NULL, '{"orderId": 2}'),
		('bets', 'UPDATE', '', '{"betId": 3}'),
		('nosuch', 'INSERT', NULL, '{"id": 4}'),
		('nosuch', 'INSERT', 'acme', '{"id": 5}')`)
	b.exec(t, `INSERT INTO scores (fixture_id) VALUES ('f1')`)
	b.exec(t, `UPDATE scores SET live = true`) // the marker: global, seen by every subscriber

	for i, c := range live {
		got := c.wait(t, 1)
		require.Len(t, got, 1, "subscriber %d", i)
		require.Equal(t, "scores", got[0].Channel, "subscriber %d got a tenant row without a tenant", i)
	}
	for i, sub := range subs { // the same in a replay
		sub.Since = &before
		c, _ := b.connect(t, sub)
		got := c.wait(t, 1)
		require.Len(t, got, 1, "replay %d", i)
		require.Equal(t, "scores", got[0].Channel, "replay %d", i)
		require.Contains(t, c.other[0], `"recovered":true`)
	}
	var stored int
	require.NoError(t, b.pool.QueryRow(context.Background(), `SELECT count(*) FROM hub.events`).Scan(&stored))
	require.Equal(t, 6, stored, "the rows are in the log; the hub does not deliver them")
}
