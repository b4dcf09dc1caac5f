package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"golang.org/x/sync/errgroup"

	"github.com/hubdev/hub/api"
	"github.com/hubdev/hub/hub"
	"github.com/hubdev/hub/migrations"
	"github.com/hubdev/hub/server/demo"
	"github.com/hubdev/hub/store"
)

// shutdownTimeout bounds the HTTP server's graceful stop; with the
// embedded cluster's fast shutdown after it the process exits within the
// 10 s of SPEC §9.
const shutdownTimeout = 8 * time.Second

// serve runs the hub until ctx ends or a part of it fails.
func serve(ctx context.Context, cfg Config, stdout io.Writer, log *slog.Logger) error {
	db, err := openDatabase(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer db.close()
	ln, tlsConfig, err := listen(cfg)
	if err != nil {
		return err
	}
	baseURL := httpURL(ln.Addr(), tlsConfig != nil)
	adminToken, banner := cfg.AdminToken, [][2]string(nil)
	if db.pg != nil {
		if banner, adminToken, err = db.pg.welcome(ctx, db.store, adminToken, baseURL); err != nil {
			ln.Close()
			return err
		}
	}
	// On the background pool: a flood of client requests does not make
	// the node look unready.
	ready := &readiness{db: stdlib.OpenDBFromPool(db.bgPool), log: log}
	defer ready.db.Close()
	start, err := db.store.EventStart(ctx)
	if err != nil {
		return err
	}
	h := hub.New(db.store, start, hub.Config{
		SendBuffer: cfg.SendBuffer, MaxLag: cfg.MaxLag, SnapshotMaxRows: cfg.SnapshotMaxRows,
		// A snapshot holds a connection while its rows go out: half the
		// pool at most, so that subscribes and catch-ups keep the rest.
		MaxSnapshots: max(int(db.pool.Config().MaxConns)/2, 1), Logger: log,
	})
	if err := h.LoadChannels(ctx); err != nil {
		return err
	}
	node := hub.NewNode(db.store, h, hub.NodeConfig{ID: cfg.NodeID, Beats: db.bg, Logger: log})
	stats := &adminStats{node: cfg.NodeID, hub: h}
	conns := &api.Conns{}
	srv := &http.Server{
		Handler: api.New(api.Config{
			Ready: ready.check, AdminToken: adminToken, Logger: log,
			Hub: h, Store: db.store, Leases: node, Conns: conns, Admin: db.store, Stats: stats,
			AuthTimeout: cfg.AuthTimeout, HeartbeatInterval: cfg.HeartbeatInterval, EOSParkHeartbeat: cfg.EOSparkHeartbeat,
			MaxMessageBytes: cfg.MaxMessageBytes, WriteTimeout: cfg.WriteTimeout,
			MaxPending: cfg.MaxPending, MaxPendingPerAddr: cfg.MaxPendingPerAddr,
		}),
		TLSConfig:         tlsConfig,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	printBanner(stdout, append([][2]string{{"listening on", baseURL}}, banner...))
	log.Info("hub started", "addr", ln.Addr().String(), "database", safeDatabase(db.pool))
	err = runParts(ctx, cfg, parts{pool: db.pool, bg: db.bg, hub: h, node: node, stats: stats, start: start, ready: ready, srv: srv, ln: ln}, log)
	// The node closed the sessions with 1012 and released the leases on its
	// way out; http.Server.Shutdown does not wait for hijacked connections,
	// so wait for their goroutines here.
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
	defer cancel()
	if werr := conns.Wait(wctx); werr != nil {
		log.Warn("websocket connections still open at exit", "err", werr)
	}
	return err
}

// parts are what runParts runs.
type parts struct {
	pool  *pgxpool.Pool // client traffic's; the demo writes through it like an application
	bg    *store.Store  // on the background pool
	stats *adminStats
	hub   *hub.Hub
	node  *hub.Node
	start store.Position // where the hub and the reader begin
	ready *readiness
	srv   *http.Server
	ln    net.Listener
}

// runParts runs the hub's long-lived parts under one errgroup: the first
// to fail, or the end of ctx, stops them all.
func runParts(ctx context.Context, cfg Config, p parts, log *slog.Logger) error {
	st, h, start, ready, srv, ln := p.bg, p.hub, p.start, p.ready, p.srv, p.ln
	oldest := &oldestWriteWarning{log: log}
	reader := hub.NewReader(st, hub.ReaderConfig{
		Start:          start,
		Node:           cfg.NodeID,
		Deliver:        h.Deliver,
		OnChannels:     h.RefreshChannels,
		OnListening:    func() { ready.listening.Store(true) },
		OnListenerLost: func() { ready.listening.Store(false) },
		OnRead:         h.ObserveRead,
		OnBacklog:      func(b store.Backlog) { oldest.observe(b); h.ObserveBacklog(b) },
		Logger:         log,
	})
	retention := hub.NewRetention(st, hub.RetentionConfig{Keep: cfg.EventRetention, Logger: log})
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return h.Run(gctx) })
	g.Go(func() error { return p.node.Run(gctx) })
	g.Go(func() error { return p.stats.Run(gctx) })
	if cfg.Demo {
		g.Go(func() error { return demo.Run(gctx, p.pool, log) })
	}
	if cfg.PprofAddr != "" {
		g.Go(func() error { return servePprof(gctx, cfg.PprofAddr, log) })
	}
	g.Go(func() error { return reader.Run(gctx) })
	g.Go(func() error { return retention.Run(gctx) })
	g.Go(func() error { return serveHTTP(gctx, srv, ln, log) })
	err := g.Wait()
	log.Info("hub stopped", "events_read", h.Stats().Events)
	return err
}

// oldestWriteWarning logs once when a write transaction has held delivery
// back for 10 s, and once when it ends (SPEC §2.3).
type oldestWriteWarning struct {
	log    *slog.Logger
	warned bool // only the reader's goroutine calls observe
}

const oldestWriteWarnAfter = 10 * time.Second

func (w *oldestWriteWarning) observe(b store.Backlog) {
	switch {
	case b.OldestWrite >= oldestWriteWarnAfter && !w.warned:
		w.warned = true
		w.log.Warn("an open write transaction holds delivery back; every event after it waits until it ends",
			"age", b.OldestWrite.Round(time.Second).String())
	case b.OldestWrite < oldestWriteWarnAfter && w.warned:
		w.warned = false
		w.log.Info("the open write transaction that held delivery back has ended")
	}
}

// database is the hub's PostgreSQL: two pools and, in the embedded mode,
// the cluster under them. Client traffic (subscribes, catch-up reads,
// lease writes, admin requests) uses pool and store; the reader, the
// node's heartbeat, retention and readiness use bgPool and bg, which
// client traffic cannot exhaust (see store.ConnectBackground).
type database struct {
	pg     *embeddedPG // nil with DATABASE_URL
	pool   *pgxpool.Pool
	store  *store.Store
	bgPool *pgxpool.Pool
	bg     *store.Store
}

// openDatabase starts the embedded cluster when DATABASE_URL is unset,
// applies the migrations and opens the pool.
func openDatabase(ctx context.Context, cfg Config, log *slog.Logger) (_ *database, err error) {
	db, dbURL := &database{}, cfg.DatabaseURL
	if cfg.Embedded() {
		if db.pg, err = startEmbedded(ctx, cfg, log); err != nil {
			return nil, err
		}
		defer func() {
			if err != nil {
				db.pg.stop()
			}
		}()
		dbURL = db.pg.url
	}
	if err := migrations.Up(dbURL); err != nil {
		return nil, fmt.Errorf("apply migrations: %w", err)
	}
	if db.pool, err = store.Connect(ctx, dbURL); err != nil {
		return nil, err
	}
	if db.bgPool, err = store.ConnectBackground(ctx, dbURL); err != nil {
		db.pool.Close()
		return nil, err
	}
	db.store, db.bg = store.New(db.pool), store.New(db.bgPool)
	return db, nil
}

// close closes the pools, then stops the embedded cluster.
func (db *database) close() {
	db.pool.Close()
	db.bgPool.Close()
	if db.pg != nil {
		db.pg.stop()
	}
}

// listen opens the HTTP listener first, so that a taken port fails the
// start and HUB_ADDR=:0 can print the port it got.
func listen(cfg Config) (net.Listener, *tls.Config, error) {
	var tlsConfig *tls.Config
	if cfg.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
		if err != nil {
			return nil, nil, fmt.Errorf("HUB_TLS_CERT, HUB_TLS_KEY: %w", err)
		}
		tlsConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, nil, fmt.Errorf("HUB_ADDR: %w", err)
	}
	return api.SendBufferListener(ln), tlsConfig, nil
}

// serveHTTP serves until ctx ends, then shuts the server down gracefully.
func serveHTTP(ctx context.Context, srv *http.Server, ln net.Listener, log *slog.Logger) error {
	errc := make(chan error, 1)
	go func() { // ends when the server is shut down, waited for below
		if srv.TLSConfig != nil {
			errc <- srv.ServeTLS(ln, "", "")
		} else {
			errc <- srv.Serve(ln)
		}
	}()
	select {
	case err := <-errc:
		return fmt.Errorf("http server: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		log.Warn("http shutdown incomplete; closing the remaining connections", "err", err)
		_ = srv.Close()
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("http server: %w", err)
	}
	return nil
}

func httpURL(addr net.Addr, secure bool) string {
	scheme := "http"
	if secure {
		scheme = "https"
	}
	host, port, err := net.SplitHostPort(addr.String())
	if err != nil {
		return scheme + "://" + addr.String()
	}
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "localhost"
	}
	return scheme + "://" + net.JoinHostPort(host, port)
}

// printBanner writes what a person starting the hub needs, one aligned
// "name: value" line each.
func printBanner(w io.Writer, lines [][2]string) {
	fmt.Fprintln(w, "hub is running")
	for _, l := range lines {
		fmt.Fprintf(w, "  %-14s %s\n", l[0]+":", l[1])
	}
}

// safeDatabase names the database without its password.
func safeDatabase(pool *pgxpool.Pool) string {
	c := pool.Config().ConnConfig
	return fmt.Sprintf("user=%s host=%s database=%s", c.User, c.Host, c.Database)
}
