package migrations

import (
	"fmt"
)

// Migration 5 builds index hub.events_channel_client CONCURRENTLY, so
// that writers are never blocked while it builds on a large log. A
// concurrent build that fails (cancelled, a deadlock, the server
// restarted) leaves the index behind INVALID: the planner never uses it,
// yet every write maintains it, and the file's IF NOT EXISTS skips it
// when the migration is run again. Up rebuilds such an index; Check
// reports it.

// brokenIndexSQL is a boolean expression: the index is invalid and no one
// is building it. CREATE INDEX CONCURRENTLY marks its index valid only at
// its end, so an index being built (by migration 5, or by rebuildIndex
// on another node) is invalid all along and must be left alone.
const brokenIndexSQL = `EXISTS (
	SELECT FROM pg_index i
	WHERE i.indexrelid = to_regclass('hub.events_channel_client') AND NOT i.indisvalid
	  AND NOT EXISTS (SELECT FROM pg_stat_progress_create_index p WHERE p.index_relid = i.indexrelid))`

// rebuildIndex drops a broken index of migration 5 and runs the
// migration's file again; a sound or missing index is left as it is. It
// takes golang-migrate's lock, as a migration does, so that nodes
// starting together rebuild the index once; the check before the lock
// keeps a start from waiting on it in the usual case.
func rebuildIndex(m migrator) (err error) {
	if broken, err := indexBroken(m); err != nil || !broken {
		return err
	}
	if err := m.driver.Lock(); err != nil {
		return fmt.Errorf("lock for index rebuild: %w", err)
	}
	defer func() {
		if uerr := m.driver.Unlock(); uerr != nil && err == nil {
			err = fmt.Errorf("unlock after index rebuild: %w", uerr)
		}
	}()
	if broken, err := indexBroken(m); err != nil || !broken {
		return err // rebuilt by another node meanwhile
	}
	// Each file is one statement, run on the lock's connection outside a
	// transaction, as CONCURRENTLY requires.
	for _, name := range []string{"0005_events_channel_client.down.sql", "0005_events_channel_client.up.sql"} {
		if err := runFile(m, name); err != nil {
			return fmt.Errorf("rebuild index hub.events_channel_client: %w", err)
		}
	}
	return nil
}

func indexBroken(m migrator) (bool, error) {
	var broken bool
	if err := m.db.QueryRow(`SELECT ` + brokenIndexSQL).Scan(&broken); err != nil {
		return false, fmt.Errorf("check index hub.events_channel_client: %w", err)
	}
	return broken, nil
}

func runFile(m migrator, name string) error {
	f, err := files.Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := m.driver.Run(f); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}
