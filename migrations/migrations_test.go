package migrations_test

import (
	"context"
	"database/sql"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hubdev/hub/migrations"
	"github.com/hubdev/hub/store/storetest"
)

func TestMain(m *testing.M) { storetest.Main(m) }

func openDB(t *testing.T, u string) *sql.DB {
	t.Helper()
	db, err := sql.Open("pgx", u)
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	return db
}

// breakIndex marks migration 5's index invalid, as a concurrent build
// that failed leaves it (the test cluster's user is a superuser).
func breakIndex(t *testing.T, db *sql.DB) {
	t.Helper()
	_, err := db.Exec(`UPDATE pg_index SET indisvalid = false WHERE indexrelid = 'hub.events_channel_client'::regclass`)
	require.NoError(t, err)
}

func indexValid(t *testing.T, db *sql.DB) bool {
	t.Helper()
	var valid bool
	require.NoError(t, db.QueryRow(`SELECT indisvalid FROM pg_index WHERE indexrelid = 'hub.events_channel_client'::regclass`).Scan(&valid))
	return valid
}

// An index left invalid by a failed concurrent build makes the schema not
// current, with what to do about it, and Up rebuilds it. Migration 5's
// IF NOT EXISTS alone skipped it for good: the catch-up then walked the
// whole log for a quiet client (issue 12 §5).
func TestInvalidIndexRebuilt(t *testing.T) {
	t.Parallel()
	u := storetest.NewDB(t)
	db := openDB(t, u)
	ctx := context.Background()
	require.NoError(t, migrations.Check(ctx, db))
	breakIndex(t, db)

	err := migrations.Check(ctx, db)
	require.ErrorIs(t, err, migrations.ErrNotCurrent)
	require.ErrorContains(t, err, "hub.events_channel_client is invalid")
	require.ErrorContains(t, err, "hub migrate up")

	require.NoError(t, migrations.Up(u))
	require.True(t, indexValid(t, db), "rebuilt")
	require.NoError(t, migrations.Check(ctx, db))
	require.NoError(t, migrations.Up(u), "a sound index is left alone")
}

// An index being built is invalid until its build ends; Check does not
// report it, so that while one node rebuilds it the others stay ready.
// The build is held at its last wait, for transactions with older
// snapshots, by one such transaction.
func TestIndexBeingBuiltIsNotBroken(t *testing.T) {
	t.Parallel()
	u := storetest.NewDB(t)
	db := openDB(t, u)
	ctx := context.Background()
	breakIndex(t, db)
	tx, err := db.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true})
	require.NoError(t, err)
	t.Cleanup(func() { _ = tx.Rollback() })
	_, err = tx.Exec(`SELECT 1`) // takes the snapshot the build waits for
	require.NoError(t, err)

	done := make(chan error, 1)
	go func() { done <- migrations.Up(u) }()
	require.Eventually(t, func() bool {
		var waiting bool
		err := db.QueryRow(`SELECT EXISTS (SELECT FROM pg_stat_progress_create_index
			WHERE index_relid = to_regclass('hub.events_channel_client') AND phase = 'waiting for old snapshots')`).Scan(&waiting)
		return err == nil && waiting
	}, 30*time.Second, 5*time.Millisecond, "the rebuild reaches its wait")
	require.False(t, indexValid(t, db))
	require.NoError(t, migrations.Check(ctx, db), "a build in progress is not an error")

	require.NoError(t, tx.Rollback())
	require.NoError(t, <-done)
	require.True(t, indexValid(t, db))
}
