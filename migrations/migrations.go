// Package migrations holds the hub's schema as golang-migrate SQL files,
// embedded in the binary, and applies them. golang-migrate's version table
// lives in schema hub, which is created first so that it exists before the
// first migration runs.
package migrations

import (
	"database/sql"
	"embed"
	"errors"
	"fmt"

	"github.com/golang-migrate/migrate/v4"
	"github.com/golang-migrate/migrate/v4/database"
	pgxmigrate "github.com/golang-migrate/migrate/v4/database/pgx/v5"
	"github.com/golang-migrate/migrate/v4/source/iofs"
	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver
)

//go:embed *.sql
var files embed.FS

// Latest is the version Up migrates to; /readyz compares it with the database's.
const Latest = 8

// Up applies every migration not applied yet, then rebuilds the index of
// migration 5 if a failed concurrent build left it invalid (rebuildIndex).
func Up(databaseURL string) error {
	return withMigrate(databaseURL, func(m migrator) error {
		if err := m.Up(); err != nil && !errors.Is(err, migrate.ErrNoChange) {
			return err
		}
		return rebuildIndex(m)
	})
}

// Down reverts every migration.
func Down(databaseURL string) error {
	return withMigrate(databaseURL, func(m migrator) error { return m.Down() })
}

// Version reports the applied version and whether a failed migration left
// the schema dirty; version 0 means none applied.
func Version(databaseURL string) (version uint, dirty bool, err error) {
	err = withMigrate(databaseURL, func(m migrator) error {
		version, dirty, err = m.Version()
		if errors.Is(err, migrate.ErrNilVersion) {
			return nil
		}
		return err
	})
	return version, dirty, err
}

// migrator is golang-migrate with what rebuildIndex needs besides: the
// database, and the driver whose connection takes the migration lock.
type migrator struct {
	*migrate.Migrate
	db     *sql.DB
	driver database.Driver
}

func withMigrate(databaseURL string, do func(migrator) error) error {
	db, err := sql.Open("pgx", databaseURL)
	if err != nil {
		return fmt.Errorf("open database: %w", err)
	}
	defer db.Close()
	if _, err := db.Exec(`CREATE SCHEMA IF NOT EXISTS hub`); err != nil {
		return fmt.Errorf("create schema hub: %w", err)
	}
	driver, err := pgxmigrate.WithInstance(db, &pgxmigrate.Config{SchemaName: "hub", MigrationsTable: "schema_migrations"})
	if err != nil {
		return fmt.Errorf("migration driver: %w", err)
	}
	src, err := iofs.New(files, ".")
	if err != nil {
		return fmt.Errorf("migration files: %w", err)
	}
	m, err := migrate.NewWithInstance("iofs", src, "pgx5", driver)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer m.Close()
	if err := do(migrator{Migrate: m, db: db, driver: driver}); err != nil && !errors.Is(err, migrate.ErrNoChange) {
		return fmt.Errorf("migrate: %w", err)
	}
	return nil
}
