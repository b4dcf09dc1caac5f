package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Store is the hub's access to PostgreSQL.
type Store struct {
	pool *pgxpool.Pool
	cols columnCache
}

// New wraps a pool; the caller owns the pool and closes it.
func New(pool *pgxpool.Pool) *Store {
	return &Store{pool: pool}
}

// Session settings of every pooled connection, unless the database URL
// sets them (e.g. `?statement_timeout=30s`). The hub's statements take
// milliseconds: a page of the log is an index walk of at most 1000 events,
// a retention batch deletes at most 5000, a lease resync is one batch. A
// statement still running after statementTimeout is stuck, not slow, and
// a lock held for lockTimeout belongs to something other than the hub
// (an operator's open transaction); failing then frees the connection
// for the next caller instead of parking it. Migrations run on their own
// connection and are not limited.
const (
	statementTimeout = "10s"
	lockTimeout      = "5s"
)

// connectTimeout bounds opening a connection when the URL does not
// (`connect_timeout`): without it a dial into a silent network waits for
// the kernel's TCP timeout, minutes.
const connectTimeout = 5 * time.Second

// BackgroundPoolSize is the size of ConnectBackground's pool: the reader's
// page and backlog reads, the node's heartbeat, retention and the
// readiness probe each use one connection at a time (the reader's LISTEN
// connection is its own).
const BackgroundPoolSize = 4

// Connect opens the pool for client traffic (subscribes, catch-up reads,
// admin requests) and checks that it answers. Its size is pgx's default
// or the URL's pool_max_conns.
func Connect(ctx context.Context, databaseURL string) (*pgxpool.Pool, error) {
	return connect(ctx, databaseURL, poolOptions{name: "hub", callTimeout: callTimeout})
}

// ConnectBackground opens a small pool of its own for the hub's background
// work: the reader, the heartbeat, retention and readiness. Client traffic
// runs on Connect's pool and cannot take these connections, so a flood of
// slow subscribes or admin requests cannot hold back the heartbeat (whose
// lapse would stop this node's connections counting) or delivery.
func ConnectBackground(ctx context.Context, databaseURL string) (*pgxpool.Pool, error) {
	return connect(ctx, databaseURL, poolOptions{name: "hub-background", maxConns: BackgroundPoolSize, callTimeout: callTimeout})
}

type poolOptions struct {
	name        string        // application_name, as pg_stat_activity shows it
	maxConns    int32         // 0: the URL's pool_max_conns or pgx's default
	callTimeout time.Duration // see callTimeout
}

func connect(ctx context.Context, databaseURL string, o poolOptions) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(databaseURL)
	if err != nil {
		return nil, fmt.Errorf("parse database URL: %w", err)
	}
	if o.maxConns > 0 {
		cfg.MaxConns = o.maxConns
	}
	cc := cfg.ConnConfig
	if cc.RuntimeParams == nil {
		cc.RuntimeParams = map[string]string{}
	}
	cc.RuntimeParams["application_name"] = o.name
	setDefault(cc.RuntimeParams, "statement_timeout", statementTimeout)
	setDefault(cc.RuntimeParams, "lock_timeout", lockTimeout)
	if cc.ConnectTimeout == 0 {
		cc.ConnectTimeout = connectTimeout
	}
	cc.Tracer = deadlineTracer{d: o.callTimeout}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open pool: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connect to database: %w", err)
	}
	return pool, nil
}

func setDefault(m map[string]string, k, v string) {
	if _, ok := m[k]; !ok {
		m[k] = v
	}
}
