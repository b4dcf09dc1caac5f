package migrations

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5/pgconn"
)

// ErrNotCurrent means the database's schema is not at Latest, or a failed
// migration left it dirty.
var ErrNotCurrent = errors.New("schema not current")

// Check reports whether db answers and its schema is at Latest, clean, and
// without an index that a failed concurrent build left invalid (see
// brokenIndexSQL). It reads golang-migrate's version table
// (hub.schema_migrations, see withMigrate) with one query instead of
// building a migrate instance, so that a readiness probe may call it
// every few seconds.
func Check(ctx context.Context, db *sql.DB) error {
	var version int64
	var dirty, broken bool
	err := db.QueryRowContext(ctx, `SELECT version, dirty, `+brokenIndexSQL+` FROM hub.schema_migrations LIMIT 1`).
		Scan(&version, &dirty, &broken)
	var pgErr *pgconn.PgError
	switch {
	case errors.Is(err, sql.ErrNoRows),
		errors.As(err, &pgErr) && (pgErr.Code == pgerrcode.UndefinedTable || pgErr.Code == pgerrcode.InvalidSchemaName):
		return fmt.Errorf("%w: no migration applied, want version %d", ErrNotCurrent, Latest)
	case err != nil:
		return fmt.Errorf("read schema version: %w", err)
	case dirty:
		return fmt.Errorf("%w: version %d is dirty (a migration failed)", ErrNotCurrent, version)
	case version != Latest:
		return fmt.Errorf("%w: version %d, want %d", ErrNotCurrent, version, Latest)
	case broken:
		return fmt.Errorf("%w: index hub.events_channel_client is invalid (its concurrent build failed); "+
			"run `hub migrate up` or restart a node to rebuild it", ErrNotCurrent)
	}
	return nil
}
