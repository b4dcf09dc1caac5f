package store_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hubdev/hub/store"
)

func TestPositionRoundTrip(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"0-0", "731-1", "18446744073709551615-9223372036854775807"} {
		p, err := store.ParsePosition(s)
		require.NoError(t, err)
		require.Equal(t, s, p.String())
	}
	for _, s := range []string{"", "-", "1-", "-1", "1--1", "+1-2", "1-+2", " 1-2", "a-b", "1-2-3", "18446744073709551616-1", "1-9223372036854775808"} {
		_, err := store.ParsePosition(s)
		require.ErrorIs(t, err, store.ErrInvalidPosition, s)
	}
	require.True(t, store.Position{Xid: 999, ID: 5}.Less(store.Position{Xid: 1000, ID: 1}), "xid compares as a number")
	require.True(t, store.Position{Xid: 7, ID: 1}.Less(store.Position{Xid: 7, ID: 2}))
}

func FuzzParsePosition(f *testing.F) {
	for _, s := range []string{"0-0", "731-1", "1-", "x", "999-1000"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := store.ParsePosition(s)
		if err != nil {
			return
		}
		q, err := store.ParsePosition(p.String())
		if err != nil || q != p {
			t.Fatalf("%q: %v does not round-trip", s, p)
		}
	})
}

// The reader's read must stay an index walk however stale the statistics:
// here they were taken while the log was empty, and 100,000 events follow.
func TestEventsAfterWalksTheIndex(t *testing.T) {
	walk(t, setupCapture(t))
}

func walk(t *testing.T, b captureBundle) {
	b.exec(t,
		`INSERT INTO orders (client) SELECT 'acme' FROM generate_series(1, 100)`,
		`ANALYZE hub.events`,
	)
	// Statistics now say every xid is old: the 100,000 newer events are
	// beyond the histogram, estimated at next to none.
	for range 10 {
		b.exec(t, `INSERT INTO hub.events (channel, op, client, payload)
		 SELECT 'orders', 'INSERT', 'acme', jsonb_build_object('n', g) FROM generate_series(1, 10000) g`)
	}
	b.settle(t)
	ctx := context.Background()
	tx, err := b.pool.Begin(ctx)
	require.NoError(t, err)
	defer tx.Rollback(ctx)
	xid, id, pages := "0", int64(0), 0
	for {
		var n int
		err := tx.QueryRow(ctx, `
			WITH page AS (SELECT xid, id FROM hub.events_after($1::text::xid8, $2, 1000))
			SELECT count(*), coalesce((SELECT xid::text FROM page ORDER BY xid DESC, id DESC LIMIT 1), $1),
			       coalesce((SELECT id FROM page ORDER BY xid DESC, id DESC LIMIT 1), $2)
			FROM page`, xid, id).Scan(&n, &xid, &id)
		require.NoError(t, err)
		if n == 0 {
			break
		}
		pages++
	}
	require.Equal(t, 101, pages)
	var seq, idx int64
	require.NoError(t, tx.QueryRow(ctx,
		`SELECT seq_scan, coalesce(idx_scan, 0) FROM pg_stat_xact_user_tables WHERE relid = 'hub.events'::regclass`).Scan(&seq, &idx))
	require.Zero(t, seq, "no sequential scan of the log")
	require.GreaterOrEqual(t, idx, int64(pages))
}

func TestEventTrim(t *testing.T) {
	b := setupCapture(t)
	ctx := context.Background()
	b.exec(t,
		`INSERT INTO accounts (account_id, client, balance) SELECT 'a' || g, 'acme', 0 FROM generate_series(1, 10) g`,
		`UPDATE accounts SET balance = 1`,
	)
	events := b.all(t)
	require.Len(t, events, 10)
	// The first six events are two days old, the seventh young, the eighth
	// old again: the trim deletes a prefix of the log, so it stops at the
	// seventh.
	for i, e := range events {
		age := "0"
		if i < 6 || i == 7 {
			age = "2 days"
		}
		_, err := b.pool.Exec(ctx, `UPDATE hub.events SET created_at = now() - $1::interval WHERE id = $2`, age, e.Pos.ID)
		require.NoError(t, err)
	}
	h, err := b.store.Horizon(ctx)
	require.NoError(t, err)
	require.Equal(t, store.Position{}, h)

	n, err := b.store.EventTrim(ctx, 24*time.Hour, 4)
	require.NoError(t, err)
	require.EqualValues(t, 4, n)
	n, err = b.store.EventTrim(ctx, 24*time.Hour, 4)
	require.NoError(t, err)
	require.EqualValues(t, 2, n)
	n, err = b.store.EventTrim(ctx, 24*time.Hour, 4)
	require.NoError(t, err)
	require.Zero(t, n)

	h, err = b.store.Horizon(ctx)
	require.NoError(t, err)
	require.Equal(t, events[5].Pos, h, "the horizon is the newest position deleted")
	var kept []store.Position
	for _, e := range b.all(t) {
		kept = append(kept, e.Pos)
	}
	require.Equal(t, []store.Position{events[6].Pos, events[7].Pos, events[8].Pos, events[9].Pos}, kept,
		"only expired events are deleted, as a prefix of the log")
}

// The backlog check runs every few milliseconds while events are held
// back: it must not read the log, whatever its size.
func TestBacklogCheckWalksTheIndex(t *testing.T) {
	b := setupCapture(t)
	b.exec(t,
		`INSERT INTO hub.events (channel, op, client, payload)
		 SELECT 'orders', 'INSERT', 'acme', '{}' FROM generate_series(1, 50000)`,
		`ANALYZE hub.events`,
	)
	rows, err := b.pool.Query(context.Background(), "EXPLAIN "+store.BacklogSQL)
	require.NoError(t, err)
	var plan []string
	for rows.Next() {
		var line string
		require.NoError(t, rows.Scan(&line))
		plan = append(plan, line)
	}
	require.NoError(t, rows.Err())
	joined := strings.Join(plan, "\n")
	require.NotContains(t, joined, "Seq Scan on events", joined)
	require.Contains(t, joined, "Index", joined)
	_, err = b.store.BacklogCheck(context.Background())
	require.NoError(t, err)
}
