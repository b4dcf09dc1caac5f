package store_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/hubdev/hub/store"
)

// eventsFor reads every page of a filter, maxRows at a time, and checks
// the pages' bounds on the way.
func (b captureBundle) eventsFor(t *testing.T, f store.EventFilter, maxRows int) []store.Event {
	t.Helper()
	var out []store.Event
	for {
		page, err := b.store.EventsFor(context.Background(), f, maxRows, 1<<20)
		require.NoError(t, err)
		require.False(t, page.Trimmed)
		require.LessOrEqual(t, len(page.Events), maxRows)
		out = append(out, page.Events...)
		require.False(t, page.Reached.Less(f.After), "the read never goes back")
		if n := len(page.Events); n > 0 {
			require.False(t, page.Reached.Less(page.Events[n-1].Pos))
		}
		if page.Complete {
			return out
		}
		require.Len(t, page.Events, maxRows, "a page short of maxRows reached the watermark")
		f.After = page.Reached
	}
}

func subjects(events []store.Event) []string {
	out := make([]string, len(events))
	for i, e := range events {
		out[i] = e.Subject
	}
	return out
}

// A catch-up reads only what its session may see (issue 12 §5): its
// client's rows of tenant channels, the global channels' rows without a
// client (and those that name its client), only on its channels; never a
// tenant channel's row without a client, nor a channel that is not
// attached.
func TestEventsForFilters(t *testing.T) {
	b := setupCapture(t)
	b.exec(t,
		`INSERT INTO orders (client, account_id) VALUES ('acme', 'o-acme-1'), ('beta', 'o-beta-1')`,
		`INSERT INTO bets (client, account_id) VALUES ('acme', 'b-acme-1')`,
		`INSERT INTO scores (fixture_id) VALUES ('s-1')`,
		`UPDATE scores SET live = true`,
		`INSERT INTO hub.events (channel, op, client, subject, payload) VALUES
			('orders', 'INSERT', '', 'o-empty', '{}'),
			('orders', 'INSERT', NULL, 'o-null', '{}'),
			('scores', 'UPDATE', 'beta', 's-beta', '{}'),
			('nosuch', 'INSERT', 'acme', 'x-acme', '{}'),
			('nosuch', 'INSERT', NULL, 'x-null', '{}')`,
		`INSERT INTO orders (client, account_id) VALUES ('acme', 'o-acme-2')`,
	)
	b.settle(t)
	for _, tc := range []struct {
		client   string
		channels []string
		want     []string
	}{
		{"acme", nil, []string{"o-acme-1", "b-acme-1", "s-1", "o-acme-2"}},
		{"acme", []string{"scores"}, []string{"s-1"}},
		{"acme", []string{"orders", "nosuch"}, []string{"o-acme-1", "o-acme-2"}},
		{"beta", []string{"orders", "scores"}, []string{"o-beta-1", "s-1", "s-beta"}},
		{"gamma", nil, []string{"s-1"}},
		{"acme", []string{}, []string{}},
	} {
		for _, maxRows := range []int{1, 2, 1000} {
			got := b.eventsFor(t, store.EventFilter{Client: tc.client, Channels: tc.channels}, maxRows)
			require.Equal(t, tc.want, subjects(got), "%s %v by %d", tc.client, tc.channels, maxRows)
			for i, e := range got {
				require.True(t, e.Visible(tc.client))
				if i > 0 {
					require.True(t, got[i-1].Pos.Less(e.Pos))
				}
			}
		}
	}
	newest, err := b.store.EventNewest(context.Background())
	require.NoError(t, err)
	page, err := b.store.EventsFor(context.Background(), store.EventFilter{Client: "gamma", Channels: []string{"orders"}}, 10, 1<<20)
	require.NoError(t, err)
	require.Empty(t, page.Events)
	require.True(t, page.Complete)
	require.False(t, newest.Less(page.Reached), "a read's resume point is never past what EventNewest accepts")
	require.True(t, store.Position{}.Less(page.Reached), "a read that found nothing still reaches the watermark")
}

// The catch-up of a quiet client behind 100,000 events of another reads
// its own event through the index, not the others'.
func TestEventsForReadsOnlyTheSession(t *testing.T) {
	b := setupCapture(t)
	b.exec(t,
		`INSERT INTO hub.events (channel, op, client, payload)
		 SELECT 'orders', 'INSERT', 'acme', jsonb_build_object('n', g) FROM generate_series(1, 100000) g`,
		`INSERT INTO hub.events (channel, op, client, subject, payload) VALUES ('orders', 'INSERT', 'beta', 'mine', '{}')`,
		`ANALYZE hub.events`,
	)
	b.settle(t)
	ctx := context.Background()
	tx, err := b.pool.Begin(ctx)
	require.NoError(t, err)
	defer tx.Rollback(ctx)
	var n int
	require.NoError(t, tx.QueryRow(ctx,
		`SELECT count(*) FROM hub.events_for('0', 0, 'beta', '{orders,scores}', 1000, 1048576) WHERE op IS NOT NULL`).Scan(&n))
	require.Equal(t, 1, n)
	var seq, fetched int64
	require.NoError(t, tx.QueryRow(ctx,
		`SELECT seq_scan, coalesce(idx_tup_fetch, 0) FROM pg_stat_xact_user_tables WHERE relid = 'hub.events'::regclass`).Scan(&seq, &fetched))
	require.Zero(t, seq, "no sequential scan of the log")
	// A few fetches are the planner's: it looks up the ends of the index.
	require.Less(t, fetched, int64(100), "the other client's 100,000 events are not read")

	// A page of the busy client's events, on every channel, reads that
	// page: the channels' ranges are merged as they are walked, not read
	// whole and sorted.
	require.NoError(t, tx.QueryRow(ctx,
		`SELECT count(*) FROM hub.events_for('0', 0, 'acme', NULL, 100, 1048576) WHERE op IS NOT NULL`).Scan(&n))
	require.Equal(t, 100, n)
	var fetched2 int64
	require.NoError(t, tx.QueryRow(ctx,
		`SELECT coalesce(idx_tup_fetch, 0) FROM pg_stat_xact_user_tables WHERE relid = 'hub.events'::regclass`).Scan(&fetched2))
	require.Less(t, fetched2-fetched, int64(1000), "one page of 100, not the client's 100,000")
}

// A page is bounded by bytes as well as rows: rows of a megabyte exist.
func TestEventsForBoundsBytes(t *testing.T) {
	b := setupCapture(t)
	b.exec(t, `INSERT INTO hub.events (channel, op, client, subject, payload)
		SELECT 'orders', 'INSERT', 'acme', 'big-' || g,
		       jsonb_build_object('blob', (SELECT string_agg(md5(random()::text || g || i), '') FROM generate_series(1, 32768) i))
		FROM generate_series(1, 10) g`)
	b.settle(t)
	f := store.EventFilter{Client: "acme", Channels: []string{"orders"}}
	var pages, total int
	for {
		page, err := b.store.EventsFor(context.Background(), f, 1000, 2<<20)
		require.NoError(t, err)
		pages++
		total += len(page.Events)
		if page.Complete {
			break
		}
		require.Len(t, page.Events, 2, "two 1 MB rows reach the 2 MiB bound")
		f.After = page.Reached
	}
	require.Equal(t, 10, total)
	require.Equal(t, 6, pages)
}

// Events trimmed after a catch-up's start cannot be skipped silently.
func TestEventsForTrimmed(t *testing.T) {
	b := setupCapture(t)
	b.exec(t, `INSERT INTO orders (client, account_id) SELECT 'acme', 'a' || g FROM generate_series(1, 5) g`)
	b.settle(t)
	f := store.EventFilter{Client: "acme", Channels: []string{"orders"}}
	page, err := b.store.EventsFor(context.Background(), f, 2, 1<<20)
	require.NoError(t, err)
	require.Len(t, page.Events, 2)
	n, err := b.store.EventTrim(context.Background(), 0, 1000) // everything committed before the trim began
	require.NoError(t, err)
	require.EqualValues(t, 5, n)
	f.After = page.Reached
	page, err = b.store.EventsFor(context.Background(), f, 2, 1<<20)
	require.NoError(t, err)
	require.True(t, page.Trimmed)
	require.Empty(t, page.Events)
}
