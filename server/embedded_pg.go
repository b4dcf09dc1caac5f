package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/hubdev/hub/server/demo"
	"github.com/hubdev/hub/store"
	"github.com/hubdev/hub/store/localpg"
)

// The embedded mode's names (SPEC §9).
const (
	embeddedDB     = "hub"
	demoKeyLabel   = "demo"
	adminTokenFile = "admin-token"
)

// embeddedPG is the private PostgreSQL cluster that `make run` uses when
// DATABASE_URL is unset. Its data stays in dir across restarts.
type embeddedPG struct {
	cluster *localpg.Cluster
	dir     string
	url     string
	// moved says why dir is not HUB_DATA_DIR; "" when it is.
	moved string
}

// startEmbedded starts (initialising it the first time) the cluster in
// HUB_DATA_DIR and creates database hub if it is missing. The caller stops it.
func startEmbedded(ctx context.Context, cfg Config, log *slog.Logger) (*embeddedPG, error) {
	dir, moved, err := embeddedDir(cfg)
	if err != nil {
		return nil, err
	}
	if moved != "" {
		log.Info("embedded PostgreSQL data directory moved", "dir", dir, "why", moved)
	}
	c, err := localpg.New(localpg.Config{Dir: dir})
	if err != nil {
		return nil, fmt.Errorf("embedded PostgreSQL: %w", err)
	}
	if err := c.Start(ctx); err != nil {
		return nil, fmt.Errorf("embedded PostgreSQL in %s: %w", dir, err)
	}
	pg := &embeddedPG{cluster: c, dir: dir, url: c.URL(embeddedDB), moved: moved}
	if err := pg.createDatabase(ctx); err != nil {
		c.Stop()
		return nil, err
	}
	log.Info("embedded PostgreSQL started", "dir", dir)
	return pg, nil
}

// stop shuts the cluster down; committed data is kept.
func (pg *embeddedPG) stop() { pg.cluster.Stop() }

// embeddedDir is where the cluster lives. As root the server runs as the
// postgres user, which must be able to search every directory above it; a
// clone under /root is not reachable, so the default ./.hub moves to
// /var/tmp under a name taken from the project's path. A HUB_DATA_DIR that
// was given explicitly is never moved.
func embeddedDir(cfg Config) (dir, moved string, err error) {
	dir, err = filepath.Abs(cfg.DataDir)
	if err != nil {
		return "", "", fmt.Errorf("HUB_DATA_DIR: %w", err)
	}
	if localpg.Reachable(dir) {
		return dir, "", nil
	}
	if cfg.DataDirExplicit {
		return "", "", fmt.Errorf("HUB_DATA_DIR: the postgres user cannot reach %s (every directory above it must be searchable); choose another directory", dir)
	}
	alt := filepath.Join("/var/tmp", fallbackName(filepath.Dir(dir)))
	return alt, fmt.Sprintf("the postgres user cannot reach %s", dir), nil
}

// fallbackName turns a project path into a directory name: /work/main →
// hub-work-main. Long paths keep their tail and gain a hash, so the socket
// path stays within the Unix limit.
func fallbackName(project string) string {
	name := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-' {
			return r
		}
		return '-'
	}, strings.Trim(project, "/"))
	name = "hub-" + name
	if len(name) > 48 {
		sum := sha256.Sum256([]byte(project))
		name = "hub-" + name[len(name)-30:] + "-" + hex.EncodeToString(sum[:6])
	}
	return name
}

// createDatabase creates database hub unless it exists. Creating a
// database is the embedded cluster's bootstrap, not the hub's data, so it
// is done here rather than in store.
func (pg *embeddedPG) createDatabase(ctx context.Context) error {
	conn, err := pgx.Connect(ctx, pg.cluster.URL("postgres"))
	if err != nil {
		return fmt.Errorf("connect to embedded PostgreSQL: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, embeddedDB).Scan(&exists); err != nil {
		return fmt.Errorf("look for database %s: %w", embeddedDB, err)
	}
	if exists {
		return nil
	}
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+embeddedDB); err != nil {
		return fmt.Errorf("create database %s: %w", embeddedDB, err)
	}
	return nil
}

// adminToken returns the admin token kept in the data directory, creating
// it the first time (mode 0600; SPEC §9).
func (pg *embeddedPG) adminToken() (string, error) {
	path := pg.adminTokenPath()
	b, err := os.ReadFile(path)
	switch {
	case err == nil && len(strings.TrimSpace(string(b))) >= 16:
		if err := os.Chmod(path, 0o600); err != nil {
			return "", fmt.Errorf("admin token: %w", err)
		}
		return strings.TrimSpace(string(b)), nil
	case err != nil && !errors.Is(err, fs.ErrNotExist):
		return "", fmt.Errorf("admin token: %w", err)
	}
	token := rand.Text()
	tmp := path + ".new"
	_ = os.Remove(tmp) // WriteFile keeps the mode of a file that exists
	if err := os.WriteFile(tmp, []byte(token+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("admin token: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return "", fmt.Errorf("admin token: %w", err)
	}
	return token, nil
}

func (pg *embeddedPG) adminTokenPath() string { return filepath.Join(pg.dir, adminTokenFile) }

// welcome prepares the embedded mode for a person trying the hub: the
// admin token (kept, unless HUB_ADMIN_TOKEN gives one) and a fresh demo
// key. It returns the lines to print, with a dashboard link on baseURL
// that carries the key in its fragment (never sent to a server), and the
// admin token to use.
func (pg *embeddedPG) welcome(ctx context.Context, st *store.Store, adminToken, baseURL string) ([][2]string, string, error) {
	tokenLine := "from HUB_ADMIN_TOKEN"
	if adminToken == "" {
		var err error
		if adminToken, err = pg.adminToken(); err != nil {
			return nil, "", err
		}
		tokenLine = adminToken + "  (kept in " + pg.adminTokenPath() + ")"
	}
	key, err := demoKey(ctx, st)
	if err != nil {
		return nil, "", err
	}
	dirLine := pg.dir + "  (data kept across restarts)"
	if pg.moved != "" {
		dirLine = pg.dir + "  (" + pg.moved + "; data kept across restarts)"
	}
	return [][2]string{
		{"dashboard", baseURL + "/#key=" + key},
		{"database", pg.url},
		{"data dir", dirLine},
		{"demo API key", key + "  (client demo; replaced at every start)"},
		{"admin token", tokenLine},
	}, adminToken, nil
}

// demoKey makes sure client demo exists and replaces its key: keys are
// stored hashed, so the previous one cannot be shown again (SPEC §9).
func demoKey(ctx context.Context, st *store.Store) (string, error) {
	if err := st.ClientEnsure(ctx, demo.Client); err != nil {
		return "", err
	}
	if err := st.APIKeyRevokeLabel(ctx, demo.Client, demoKeyLabel); err != nil {
		return "", err
	}
	_, key, err := st.APIKeyCreate(ctx, store.APIKeyCreateParams{Client: demo.Client, Label: demoKeyLabel})
	if err != nil {
		return "", err
	}
	return key, nil
}
