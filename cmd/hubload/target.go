package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/hubdev/hub/migrations"
	"github.com/hubdev/hub/store/localpg"
)

// privateSettings trade durability for speed in the private cluster, as
// in cmd/capturebench; the figures are comparable only under the same
// settings.
var privateSettings = map[string]string{
	"fsync":              "off",
	"synchronous_commit": "off",
	"max_connections":    "200",
}

// target is what hubload measures: the servers of -servers and their
// database, all started by hubload, or the hub of -url.
type target struct {
	databaseURL string
	pgPID       int      // the postmaster; 0: unknown (-url)
	servers     []server // in the order of -servers
	// private is set when hubload started the database: it may switch the
	// servers' triggers on and off.
	private bool

	dir     string
	cluster *localpg.Cluster
}

// openTarget returns the running hub of -url, or starts a private cluster
// and the servers on it.
func openTarget(ctx context.Context, cfg config, log io.Writer) (*target, error) {
	if cfg.URL != "" {
		h, err := externalHub(ctx, cfg, log)
		if err != nil {
			return nil, err
		}
		return &target{databaseURL: cfg.DatabaseURL, servers: []server{h}}, nil
	}
	t := &target{private: true}
	if err := t.start(ctx, cfg, log); err != nil {
		t.close(log)
		return nil, err
	}
	return t, nil
}

func (t *target) start(ctx context.Context, cfg config, log io.Writer) error {
	dir, err := os.MkdirTemp("", "hubload-")
	if err != nil {
		return err
	}
	t.dir = dir
	// As root the server runs as postgres, which must reach the directory.
	if err := os.Chmod(dir, 0o755); err != nil {
		return err
	}
	if err := t.startCluster(ctx, log); err != nil {
		return err
	}
	// Migrated here rather than by the hub, so that a run of Centrifugo
	// alone has the tables too.
	if err := migrations.Up(t.databaseURL); err != nil {
		return err
	}
	ctl, err := pgx.Connect(ctx, t.databaseURL)
	if err != nil {
		return fmt.Errorf("connect to the private cluster: %w", err)
	}
	defer ctl.Close(context.Background())
	for _, name := range cfg.Servers {
		var s server
		switch name {
		case hubName:
			s, err = startHub(ctx, cfg, dir, t.databaseURL, log)
		case centrifugoName:
			s, err = startCentrifugo(ctx, cfg, dir, t.databaseURL, ctl, log)
		}
		if err != nil {
			return err
		}
		t.servers = append(t.servers, s)
	}
	return nil
}

func (t *target) startCluster(ctx context.Context, log io.Writer) error {
	fmt.Fprintf(log, "starting a private PostgreSQL cluster in %s (fsync=off, synchronous_commit=off)\n", t.dir)
	c, err := localpg.New(localpg.Config{Dir: t.dir, Settings: privateSettings})
	if err != nil {
		return err
	}
	if err := c.Start(ctx); err != nil {
		return err
	}
	t.cluster = c
	if b, err := os.ReadFile(filepath.Join(c.DataDir(), "postmaster.pid")); err == nil {
		first, _, _ := strings.Cut(string(b), "\n")
		t.pgPID, _ = strconv.Atoi(strings.TrimSpace(first))
	}
	conn, err := pgx.Connect(ctx, c.URL("postgres"))
	if err != nil {
		return fmt.Errorf("connect to the private cluster: %w", err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "CREATE DATABASE hub"); err != nil {
		return fmt.Errorf("create database hub: %w", err)
	}
	t.databaseURL = c.URL("hub")
	return nil
}

// activate enables s's trigger on table and disables every other server's
// (the hub's even when it does not run), so that the writers pay for one
// server at a time. The database of -url is left alone.
func (t *target) activate(ctx context.Context, ctl *pgx.Conn, table string, s server) error {
	if !t.private {
		return nil
	}
	triggers := []string{hubTrigger}
	for _, o := range t.servers {
		if o.trigger() != hubTrigger {
			triggers = append(triggers, o.trigger())
		}
	}
	var hubUpdate bool
	if err := ctl.QueryRow(ctx, `SELECT EXISTS (SELECT FROM pg_trigger WHERE tgrelid = $1::regclass AND tgname = $2)`,
		table, hubUpdateTrigger).Scan(&hubUpdate); err != nil {
		return fmt.Errorf("look for %s on %s: %w", hubUpdateTrigger, table, err)
	}
	var sql strings.Builder
	for _, tr := range triggers {
		state := "DISABLE"
		if tr == s.trigger() {
			state = "ENABLE"
		}
		fmt.Fprintf(&sql, "ALTER TABLE %s %s TRIGGER %s;\n", table, state, tr)
		if tr == hubTrigger && hubUpdate {
			fmt.Fprintf(&sql, "ALTER TABLE %s %s TRIGGER %s;\n", table, state, hubUpdateTrigger)
		}
	}
	if _, err := ctl.Exec(ctx, sql.String()); err != nil {
		return fmt.Errorf("switch the triggers on %s to %s's: %w", table, s.name(), err)
	}
	return nil
}

// close stops the servers and the cluster hubload started, and removes
// them.
func (t *target) close(log io.Writer) {
	for _, s := range t.servers {
		s.close(log)
	}
	if t.cluster != nil {
		t.cluster.Stop()
	}
	if t.dir != "" {
		if err := os.RemoveAll(t.dir); err != nil {
			fmt.Fprintf(log, "remove %s: %v\n", t.dir, err)
		}
	}
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// reportLog copies a started server's warnings and errors (the lines
// holding one of marks) to log before its directory goes, at most
// maxLogLines of them.
func reportLog(path, prefix string, marks []string, log io.Writer) {
	const maxLogLines = 20
	b, err := os.ReadFile(path)
	if err != nil {
		return
	}
	n := 0
	for line := range strings.Lines(string(b)) {
		for _, m := range marks {
			if strings.Contains(line, m) {
				if n++; n <= maxLogLines {
					fmt.Fprint(log, prefix, line)
				}
				break
			}
		}
	}
	if n > maxLogLines {
		fmt.Fprintf(log, "%s%d more warnings and errors\n", prefix, n-maxLogLines)
	}
}
