// Package hubtest runs a hub for tests the way the server wires it: a
// fresh database, the log reader, the routing hub and the node's lease
// keeper, all stopped when the test ends. Transports are the caller's.
package hubtest

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/hubdev/hub/hub"
	"github.com/hubdev/hub/store"
	"github.com/hubdev/hub/store/storetest"
)

// Env is a running hub on its own database.
type Env struct {
	Pool  *pgxpool.Pool
	Store *store.Store
	Hub   *hub.Hub
	Node  *hub.Node
	Log   *slog.Logger
}

// Options configure Start.
type Options struct {
	Hub    hub.Config // its Logger is set by Start
	NodeID string     // default "node-test"
	// PollInterval is the reader's (default 1s).
	PollInterval time.Duration
}

// Start runs a hub on a fresh database and returns once its reader
// listens, it knows the attached channels, and its node has written its
// leases once.
func Start(t testing.TB, o Options) *Env {
	t.Helper()
	ctx := context.Background()
	pool, _ := storetest.NewPool(t)
	e := &Env{Pool: pool, Store: store.New(pool), Log: slog.New(slog.NewTextHandler(t.Output(), nil))}
	start, err := e.Store.EventStart(ctx)
	require.NoError(t, err)
	o.Hub.Logger = e.Log
	e.Hub = hub.New(e.Store, start, o.Hub)
	require.NoError(t, e.Hub.LoadChannels(ctx))
	listening := make(chan struct{}, 1)
	reader := hub.NewReader(e.Store, hub.ReaderConfig{
		Start: start, Deliver: e.Hub.Deliver, OnChannels: e.Hub.RefreshChannels,
		OnRead: e.Hub.ObserveRead, OnBacklog: e.Hub.ObserveBacklog,
		PollInterval: o.PollInterval, Logger: e.Log,
		OnListening: func() {
			select {
			case listening <- struct{}{}:
			default:
			}
		},
	})
	if o.NodeID == "" {
		o.NodeID = "node-test"
	}
	e.Node = hub.NewNode(e.Store, e.Hub, hub.NodeConfig{ID: o.NodeID, Beat: 100 * time.Millisecond, Logger: e.Log})
	Run(t, e.Hub.Run)
	Run(t, reader.Run)
	Run(t, e.Node.Run)
	select {
	case <-listening:
	case <-time.After(30 * time.Second):
		t.Fatal("the reader did not start listening")
	}
	// A lease taken before the node's first lease write may be undone by it
	// for a beat: tests count leases exactly from the first connection.
	select {
	case <-e.Node.Started():
	case <-time.After(30 * time.Second):
		t.Fatal("the node did not start")
	}
	return e
}

// Run runs fn until the test ends, then checks that it stopped cleanly.
func Run(t testing.TB, fn func(context.Context) error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- fn(ctx) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
}

// Key creates the client unless it exists, and a key of it allowing
// maxConnections (0: the default, 5); it returns the key.
func (e *Env) Key(t testing.TB, client string, maxConnections int) string {
	t.Helper()
	ctx := context.Background()
	require.NoError(t, e.Store.ClientEnsure(ctx, client))
	_, key, err := e.Store.APIKeyCreate(ctx, store.APIKeyCreateParams{Client: client, MaxConnections: maxConnections})
	require.NoError(t, err)
	return key
}

// Exec runs one SQL statement.
func (e *Env) Exec(t testing.TB, sql string, args ...any) {
	t.Helper()
	_, err := e.Pool.Exec(context.Background(), sql, args...)
	require.NoError(t, err)
}
