package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"text/tabwriter"

	"github.com/hubdev/hub/migrations"
)

// run is the whole program: main only adds the process's signals,
// arguments, environment and output streams. The human-facing lines
// (addresses, the demo key, the admin token) go to stdout; logs go to
// stderr and never hold a secret.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cmd, rest := "serve", args
	if len(args) > 0 {
		cmd, rest = args[0], args[1:]
	}
	switch cmd {
	case "serve":
		if len(rest) > 0 {
			return fmt.Errorf("serve takes no arguments; run `hub help`")
		}
		cfg, err := loadConfig(getenv)
		if err == nil {
			err = cfg.checkServe()
		}
		if err != nil {
			return err
		}
		return serve(ctx, cfg, stdout, newLogger(stderr, cfg))
	case "migrate":
		return migrate(ctx, rest, getenv, stdout, stderr)
	case "help", "-h", "-help", "--help":
		return usage(stdout)
	default:
		return fmt.Errorf("unknown command %q; run `hub help`", cmd)
	}
}

func newLogger(w io.Writer, cfg Config) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelInfo})).With("node", cfg.NodeID)
}

// migrate runs `hub migrate up|down|version` against DATABASE_URL, or
// against the embedded cluster when it is unset. It reads only
// migrateVars of the environment.
func migrate(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) != 1 || (args[0] != "up" && args[0] != "down" && args[0] != "version") {
		return errors.New("usage: hub migrate up|down|version")
	}
	cfg, err := loadMigrateConfig(getenv)
	if err != nil {
		return err
	}
	dbURL := cfg.DatabaseURL
	if cfg.Embedded() {
		pg, err := startEmbedded(ctx, cfg, newLogger(stderr, cfg))
		if err != nil {
			return err
		}
		defer pg.stop()
		dbURL = pg.url
	}
	switch args[0] {
	case "up":
		err = migrations.Up(dbURL)
	case "down":
		err = migrations.Down(dbURL)
	}
	if err != nil {
		return err
	}
	version, dirty, err := migrations.Version(dbURL)
	if err != nil {
		return err
	}
	if dirty {
		_, err = fmt.Fprintf(stdout, "%d (dirty: a migration failed; fix it by hand, then force the version)\n", version)
		return err
	}
	_, err = fmt.Fprintf(stdout, "%d\n", version)
	return err
}

func usage(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprint(tw, `usage:
  hub [serve]	run the hub (the default)
  hub migrate up|down|version	apply or revert every migration, or print the schema version
  hub help	print this

environment:
`)
	for _, o := range options {
		def := ""
		if o.def != "" {
			def = " (default " + o.def + ")"
		}
		fmt.Fprintf(tw, "  %s\t%s%s\n", o.name, o.usage, def)
	}
	return tw.Flush()
}
