package main

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"os"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hubdev/hub/migrations"
	"github.com/hubdev/hub/store/localpg"
)

// privateSettings trade durability for speed in the private cluster; the
// figures are only comparable with runs made under the same settings, which
// is why they are printed.
var privateSettings = map[string]string{
	"fsync":              "off",
	"synchronous_commit": "off",
}

// database is the scratch database the benchmark runs in, and what has to
// be undone at the end.
type database struct {
	url      string           // the scratch database
	adminURL string           // the server's maintenance database, to drop the scratch one
	name     string           // the scratch database's name
	cluster  *localpg.Cluster // nil with -database-url
	dir      string           // the private cluster's directory
	ctl      *pgx.Conn        // control connection: attach, detach, truncate
	settings []setting
}

type setting struct{ Name, Value string }

// openDatabase starts a private cluster unless cfg names a server, then
// creates, migrates and fills a scratch database.
func openDatabase(ctx context.Context, cfg config, log io.Writer) (*database, error) {
	db := &database{adminURL: cfg.DatabaseURL, name: fmt.Sprintf("capturebench_%d", os.Getpid())}
	if cfg.DatabaseURL == "" {
		if err := db.startCluster(ctx, cfg.Durable, log); err != nil {
			db.close(log)
			return nil, err
		}
	}
	if err := db.create(ctx, cfg); err != nil {
		db.close(log)
		return nil, err
	}
	return db, nil
}

func (db *database) startCluster(ctx context.Context, durable bool, log io.Writer) error {
	dir, err := os.MkdirTemp("", "capturebench-")
	if err != nil {
		return err
	}
	db.dir = dir
	// As root the server runs as postgres, which must reach the directory.
	if err := os.Chmod(dir, 0o755); err != nil {
		return err
	}
	settings, what := privateSettings, "fsync=off, synchronous_commit=off"
	if durable {
		settings, what = nil, "fsync and synchronous_commit at their defaults"
	}
	fmt.Fprintf(log, "starting a private PostgreSQL cluster in %s (%s)\n", dir, what)
	c, err := localpg.New(localpg.Config{Dir: dir, Settings: settings})
	if err != nil {
		return err
	}
	if err := c.Start(ctx); err != nil {
		return err
	}
	db.cluster = c
	db.adminURL = c.URL("postgres")
	return nil
}

func (db *database) create(ctx context.Context, cfg config) error {
	if err := adminExec(ctx, db.adminURL, "CREATE DATABASE "+db.name); err != nil {
		return fmt.Errorf("create scratch database (the role needs CREATEDB): %w", err)
	}
	db.url = withDB(db.adminURL, db.name)
	if err := migrations.Up(db.url); err != nil {
		return err
	}
	ctl, err := pgx.Connect(ctx, db.url)
	if err != nil {
		return fmt.Errorf("connect to %s: %w", db.name, err)
	}
	db.ctl = ctl
	if err := db.fill(ctx, cfg.Rows); err != nil {
		return err
	}
	return db.readSettings(ctx)
}

// fill writes rows orders rows with ids 1..rows and empties the log of the
// events that wrote.
func (db *database) fill(ctx context.Context, rows int) error {
	_, err := db.ctl.Exec(ctx, `
		INSERT INTO public.orders (order_id, client, account_id, fixture_id, outcome_id, exchange,
		       exchange_order_id, order_status, matched_status, order_cents, order_stake, matched_stake, matched_at)
		SELECT i, 'client' || i % 20, 'acct-' || i % 500, 'fx-' || i % 300, i % 3, 'betfair',
		       'x' || i, 'open', 'unmatched', 250.5, 10.00, 0, now()
		FROM generate_series(1, $1::int) AS i`, rows)
	if err != nil {
		return fmt.Errorf("fill orders: %w", err)
	}
	return db.exec(ctx, `TRUNCATE hub.events`, `VACUUM ANALYZE public.orders`)
}

func (db *database) readSettings(ctx context.Context) error {
	for _, name := range []string{"server_version", "fsync", "synchronous_commit", "full_page_writes", "shared_buffers"} {
		var v string
		if err := db.ctl.QueryRow(ctx, "SELECT current_setting($1)", name).Scan(&v); err != nil {
			return fmt.Errorf("read setting %s: %w", name, err)
		}
		db.settings = append(db.settings, setting{name, v})
	}
	return nil
}

// exec runs statements on the control connection.
func (db *database) exec(ctx context.Context, stmts ...string) error {
	for _, q := range stmts {
		if _, err := db.ctl.Exec(ctx, q); err != nil {
			return fmt.Errorf("%s: %w", q, err)
		}
	}
	return nil
}

// close drops the scratch database, or stops and removes the private
// cluster. It runs after ctx may have ended, so it uses its own.
func (db *database) close(log io.Writer) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if db.ctl != nil {
		_ = db.ctl.Close(ctx)
	}
	if db.cluster != nil {
		db.cluster.Stop()
	} else if db.url != "" {
		if err := adminExec(ctx, db.adminURL, "DROP DATABASE IF EXISTS "+db.name+" WITH (FORCE)"); err != nil {
			fmt.Fprintf(log, "drop scratch database %s: %v\n", db.name, err)
		}
	}
	if db.dir != "" {
		if err := os.RemoveAll(db.dir); err != nil {
			fmt.Fprintf(log, "remove %s: %v\n", db.dir, err)
		}
	}
}

func adminExec(ctx context.Context, adminURL, q string) error {
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return fmt.Errorf("connect to server: %w", err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, q); err != nil {
		return fmt.Errorf("%s: %w", q, err)
	}
	return nil
}

// withDB returns the connection string u with its database replaced by name.
func withDB(u, name string) string {
	parsed, err := url.Parse(u)
	if err != nil || parsed.Scheme == "" {
		return u + " dbname=" + name // a keyword/value connection string
	}
	parsed.Path = "/" + name
	return parsed.String()
}
