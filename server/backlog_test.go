package main

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/stretchr/testify/require"

	"github.com/hubdev/hub/store"
	"github.com/hubdev/hub/store/storetest"
)

// A write transaction left open holds delivery back (SPEC §2.3): its age
// shows in hub_oldest_open_transaction_seconds and grows, nothing
// committed behind it is read, and when it commits its events come first,
// then those behind it.
func TestServeOpenTransactionHoldsDeliveryBack(t *testing.T) {
	t.Parallel()
	cluster := storetest.NewCluster(t) // an open transaction stalls every reader of its cluster
	pool := storetest.Pool(t, cluster.URL)
	key := newTenant(t, pool, "acme", 5)
	h := startInProc(t, cluster.URL, nil)
	client := &http.Client{Timeout: 2 * time.Second}
	waitStatus(t, client, h.url+"/readyz", 200, 30*time.Second)
	c := dialA(t, websocket.DefaultDialer, h.wsURL())
	c.subscribe(key, []string{"orders"}, "")

	ctx := context.Background()
	began := time.Now()
	tx, err := pool.Begin(ctx)
	require.NoError(t, err)
	defer tx.Rollback(ctx) //nolint:errcheck // after Commit it is a no-op
	_, err = tx.Exec(ctx, `INSERT INTO orders (client, order_status) SELECT 'acme', 'early' FROM generate_series(1, 3)`)
	require.NoError(t, err)
	readBefore := metric(t, client, h.url, "hub_events_read_total")
	insertOrders(t, pool, "acme", 2) // behind the open transaction
	insertOrders(t, pool, "acme", 2)
	committed := time.Since(began)

	// Wait for an age that the reader can only have measured after the
	// later transactions committed: its read then found them held back.
	var age float64
	deadline := time.Now().Add(10 * time.Second)
	for age <= committed.Seconds() {
		require.True(t, time.Now().Before(deadline), "hub_oldest_open_transaction_seconds stayed at %v", age)
		age = metric(t, client, h.url, "hub_oldest_open_transaction_seconds")
	}
	for grown := age; grown <= age; {
		require.True(t, time.Now().Before(deadline), "hub_oldest_open_transaction_seconds does not grow past %v", age)
		grown = metric(t, client, h.url, "hub_oldest_open_transaction_seconds")
	}
	require.Equal(t, readBefore, metric(t, client, h.url, "hub_events_read_total"), "nothing behind the open transaction is read")
	require.Empty(t, c.ping(5*time.Second), "nothing behind the open transaction is delivered")

	require.NoError(t, tx.Commit(ctx))
	got := c.broadcasts(7, 10*time.Second)
	want := logOrder(t, pool, "orders", "acme")
	require.Equal(t, want, ids(got), "in position order")
	for i, f := range got {
		status := "open"
		if i < 3 {
			status = "early"
		}
		var row struct{ OrderStatus string }
		require.NoError(t, json.Unmarshal(f.Payload, &row))
		require.Equal(t, status, row.OrderStatus, "event %d: the open transaction's events come first", i)
	}
	deadline = time.Now().Add(10 * time.Second)
	// The hub's own short transactions (heartbeats, leases) may be caught
	// in flight by a check: "ended" is an age well under a second.
	for metric(t, client, h.url, "hub_oldest_open_transaction_seconds") >= 0.5 {
		require.True(t, time.Now().Before(deadline), "the gauge falls back once the transaction ended")
	}
}

// The warning of SPEC §2.3 is logged once when an open write transaction
// passes 10 s, once more when it ends, and again for the next one.
func TestOldestWriteWarning(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	w := &oldestWriteWarning{log: slog.New(slog.NewTextHandler(&buf, nil))}
	lines := func() []string {
		defer buf.Reset()
		return strings.FieldsFunc(buf.String(), func(r rune) bool { return r == '\n' })
	}
	for _, step := range []struct {
		age  time.Duration
		want string // the level and message start of the one line logged, "" for none
	}{
		{0, ""},
		{9 * time.Second, ""},
		{9999 * time.Millisecond, ""},
		{10 * time.Second, `level=WARN msg="an open write transaction holds delivery back`},
		{11 * time.Second, ""},
		{time.Hour, ""},
		{0, `level=INFO msg="the open write transaction that held delivery back has ended"`},
		{0, ""},
		{3 * time.Second, ""},
		{12 * time.Second, `level=WARN msg="an open write transaction holds delivery back`},
	} {
		w.observe(store.Backlog{HeldBack: step.age > 0, OldestWrite: step.age})
		got := lines()
		if step.want == "" {
			require.Empty(t, got, "age %s", step.age)
			continue
		}
		require.Len(t, got, 1, "age %s", step.age)
		require.Contains(t, got[0], step.want, "age %s", step.age)
	}
	w.observe(store.Backlog{OldestWrite: 12 * time.Second})
	require.Empty(t, lines())
	w.observe(store.Backlog{OldestWrite: 25 * time.Second})
	require.Empty(t, lines(), "one warning per transaction, however long it stays open")
}

// The warning names the age, rounded to the second.
func TestOldestWriteWarningAge(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	w := &oldestWriteWarning{log: slog.New(slog.NewTextHandler(&buf, nil))}
	w.observe(store.Backlog{HeldBack: true, OldestWrite: 10400 * time.Millisecond})
	require.Contains(t, buf.String(), "age=10s")
}
