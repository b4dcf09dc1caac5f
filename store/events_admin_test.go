package store_test

import (
	"context"
	"net/url"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/hubdev/hub/store"
	"github.com/hubdev/hub/store/storetest"
)

func TestEventsList(t *testing.T) {
	b := setupCapture(t)
	ctx := context.Background()
	b.exec(t,
		`INSERT INTO orders (client, account_id) VALUES ('acme', 'a1'), ('beta', 'b1'), ('acme', 'a2')`,
		`INSERT INTO scores (fixture_id) VALUES ('f1')`,
		`UPDATE scores SET live = true`,
		`UPDATE orders SET order_status = 'matched' WHERE client = 'acme'`,
	)
	all := b.all(t)
	require.Len(t, all, 6)
	for i := range all {
		all[i].Scope = store.ScopeNone // the admin list shows the log as it is, without a reader's scope
	}

	list := func(p store.EventListParams) []store.Event {
		t.Helper()
		events, err := b.store.EventList(ctx, p)
		require.NoError(t, err)
		return events
	}
	require.Equal(t, all, list(store.EventListParams{Limit: 100}), "the reader's order and content")
	require.Equal(t, all[2:4], list(store.EventListParams{After: all[1].Pos, Limit: 2}))
	require.Empty(t, list(store.EventListParams{After: all[5].Pos, Limit: 100}))

	var acme, orders []store.Event
	for _, e := range all {
		if e.Client == "acme" {
			acme = append(acme, e)
		}
		if e.Channel == "orders" {
			orders = append(orders, e)
		}
	}
	require.Len(t, acme, 4)
	require.Equal(t, acme, list(store.EventListParams{Client: "acme", Limit: 100}))
	require.Equal(t, acme[1:3], list(store.EventListParams{Client: "acme", After: acme[0].Pos, Limit: 2}))
	require.Equal(t, orders, list(store.EventListParams{Channel: "orders", Limit: 100}))
	require.Equal(t, all[3:4], list(store.EventListParams{Channel: "scores", Limit: 100}))
	require.Empty(t, list(store.EventListParams{Channel: "scores", Client: "acme", Limit: 100}))
}

// EventList stays an index walk with statistics taken while the log was
// nearly empty, filtered or not (SPEC §2.3). Its transactions run on a
// pool of one connection, whose statistics are flushed on demand.
func TestEventsListWalksTheIndex(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, u := storetest.NewPool(t)
	b := captureBundle{pool: pool, store: store.New(pool)}
	b.exec(t,
		`INSERT INTO orders (client) SELECT 'acme' FROM generate_series(1, 100)`,
		`ANALYZE hub.events`,
	)
	for range 10 {
		b.exec(t, `INSERT INTO hub.events (channel, op, client, payload)
		 SELECT 'orders', 'INSERT', CASE WHEN g % 100 = 0 THEN 'beta' ELSE 'acme' END, jsonb_build_object('n', g)
		 FROM generate_series(1, 10000) g`)
	}
	b.settle(t)

	parsed, err := url.Parse(u)
	require.NoError(t, err)
	q := parsed.Query()
	q.Set("pool_max_conns", "1")
	parsed.RawQuery = q.Encode()
	one := storetest.Pool(t, parsed.String())
	st := store.New(one)
	scans := func() (seq, idx int64) {
		t.Helper()
		_, err := one.Exec(ctx, `SELECT pg_stat_force_next_flush()`)
		require.NoError(t, err)
		require.NoError(t, one.QueryRow(ctx, `
			SELECT seq_scan, coalesce(idx_scan, 0) FROM pg_stat_user_tables WHERE relid = 'hub.events'::regclass`).Scan(&seq, &idx))
		return seq, idx
	}

	seq0, idx0 := scans()
	pages := 0
	for _, p := range []store.EventListParams{{Limit: 1000}, {Client: "beta", Limit: 1000}, {Channel: "orders", Client: "acme", Limit: 1000}} {
		var n int
		for {
			page, err := st.EventList(ctx, p)
			require.NoError(t, err)
			pages++
			if len(page) == 0 {
				break
			}
			n += len(page)
			p.After = page[len(page)-1].Pos
		}
		require.Positive(t, n)
	}
	seq1, idx1 := scans()
	require.Equal(t, seq0, seq1, "no sequential scan of the log")
	require.GreaterOrEqual(t, idx1-idx0, int64(pages))
}
