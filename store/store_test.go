package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/hubdev/hub/store"
	"github.com/hubdev/hub/store/storetest"
)

func show(t *testing.T, pool *pgxpool.Pool, setting string) string {
	t.Helper()
	var v string
	require.NoError(t, pool.QueryRow(context.Background(), "SHOW "+setting).Scan(&v))
	return v
}

// Both pools bound statements and lock waits on the server, unless the
// URL says otherwise; the background pool is small and named.
func TestPoolSessionSettings(t *testing.T) {
	t.Parallel()
	u := storetest.NewDB(t)
	ctx := context.Background()
	client := storetest.Pool(t, u)
	require.Equal(t, "10s", show(t, client, "statement_timeout"))
	require.Equal(t, "5s", show(t, client, "lock_timeout"))
	require.Equal(t, "hub", show(t, client, "application_name"))

	bg, err := store.ConnectBackground(ctx, u)
	require.NoError(t, err)
	defer bg.Close()
	require.Equal(t, "10s", show(t, bg, "statement_timeout"))
	require.Equal(t, "hub-background", show(t, bg, "application_name"))
	require.EqualValues(t, store.BackgroundPoolSize, bg.Config().MaxConns)

	own := storetest.Pool(t, u+"&statement_timeout=1min")
	require.Equal(t, "1min", show(t, own, "statement_timeout"), "the URL's setting wins")
}

// Every call gets a deadline, also where statement_timeout cannot help: a
// statement the server does not end, and a wait for a connection of a
// pool that is all taken.
func TestEveryCallHasADeadline(t *testing.T) {
	t.Parallel()
	u := storetest.NewDB(t)
	ctx := context.Background()
	const timeout = 300 * time.Millisecond
	pool, err := store.ConnectTimed(ctx, u, 1, timeout)
	require.NoError(t, err)
	defer pool.Close()
	st := store.New(pool)

	start := time.Now()
	_, err = pool.Exec(ctx, "SELECT pg_sleep(5)")
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.Less(t, time.Since(start), 3*time.Second)

	taken, err := pool.Acquire(ctx)
	require.NoError(t, err)
	start = time.Now()
	_, err = st.NodeHeartbeat(ctx, "n")
	require.ErrorIs(t, err, context.DeadlineExceeded, "waiting for a connection is bounded too")
	require.Less(t, time.Since(start), 3*time.Second)
	taken.Release()
	_, err = st.NodeHeartbeat(ctx, "n")
	require.NoError(t, err, "the pool works on once a connection is free")

	// A caller's tighter deadline is kept.
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	start = time.Now()
	_, err = pool.Exec(short, "SELECT pg_sleep(5)")
	require.Error(t, err)
	require.Less(t, time.Since(start), timeout)
}
