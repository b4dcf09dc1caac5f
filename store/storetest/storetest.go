// Package storetest gives tests a real PostgreSQL: one throwaway cluster per
// test binary (or the server named by HUB_TEST_DATABASE_URL), a template
// database migrated once, and a fresh clone of it per test. Tests that hold
// write transactions open stall the readers of every database of their
// cluster (SPEC §2.3) and take a private cluster from NewCluster instead.
package storetest

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/goleak"

	"github.com/hubdev/hub/migrations"
	"github.com/hubdev/hub/store"
	"github.com/hubdev/hub/store/localpg"
)

// Main runs a test binary's tests, checks for leaked goroutines, and stops
// the shared cluster. Use it as TestMain: func TestMain(m *testing.M) { storetest.Main(m) }.
func Main(m *testing.M) {
	code := m.Run()
	shared.stop()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

// fastSettings trade durability for speed: test data is thrown away.
var fastSettings = map[string]string{
	"fsync":              "off",
	"synchronous_commit": "off",
	"full_page_writes":   "off",
	"max_connections":    "300",
	"shared_buffers":     "128MB",
}

type server struct {
	once     sync.Once
	err      error
	cluster  *localpg.Cluster // nil with HUB_TEST_DATABASE_URL
	dir      string
	adminURL string // a connection to the maintenance database
	template string
	seq      atomic.Int64
}

var shared server

func (s *server) start() error {
	s.once.Do(func() {
		s.template = fmt.Sprintf("hub_template_%d", os.Getpid())
		if u := os.Getenv("HUB_TEST_DATABASE_URL"); u != "" {
			s.adminURL = u
		} else {
			s.cluster, s.dir, s.err = startCluster()
			if s.err != nil {
				return
			}
			s.adminURL = s.cluster.URL("postgres")
		}
		s.err = s.createTemplate()
	})
	return s.err
}

func startCluster() (*localpg.Cluster, string, error) {
	dir, err := os.MkdirTemp("", "hubtest-")
	if err != nil {
		return nil, "", err
	}
	c, err := localpg.New(localpg.Config{Dir: dir, Settings: fastSettings})
	if err == nil {
		err = c.Start(context.Background())
	}
	if err != nil {
		os.RemoveAll(dir)
		return nil, "", fmt.Errorf("start test cluster: %w", err)
	}
	return c, dir, nil
}

func (s *server) createTemplate() error {
	ctx := context.Background()
	if err := s.exec(ctx, "DROP DATABASE IF EXISTS "+s.template+" WITH (FORCE)", "CREATE DATABASE "+s.template); err != nil {
		return err
	}
	if err := migrations.Up(withDB(s.adminURL, s.template)); err != nil {
		return fmt.Errorf("migrate template: %w", err)
	}
	return nil
}

func (s *server) exec(ctx context.Context, stmts ...string) error {
	conn, err := pgx.Connect(ctx, s.adminURL)
	if err != nil {
		return fmt.Errorf("connect to test server: %w", err)
	}
	defer conn.Close(ctx)
	for _, q := range stmts {
		if _, err := conn.Exec(ctx, q); err != nil {
			return fmt.Errorf("%s: %w", q, err)
		}
	}
	return nil
}

func (s *server) stop() {
	if s.cluster != nil {
		s.cluster.Stop()
		os.RemoveAll(s.dir)
		return
	}
	if s.adminURL != "" {
		_ = s.exec(context.Background(), "DROP DATABASE IF EXISTS "+s.template+" WITH (FORCE)")
	}
}

// withDB returns u with its database replaced by db.
func withDB(u, db string) string {
	parsed, err := url.Parse(u)
	if err != nil || parsed.Scheme == "" {
		// A keyword/value connection string.
		return u + " dbname=" + db
	}
	parsed.Path = "/" + db
	return parsed.String()
}

// NewDB creates a fresh, migrated database for t on the shared cluster and
// returns its URL; the database is dropped when t ends.
func NewDB(t testing.TB) string {
	t.Helper()
	if err := shared.start(); err != nil {
		t.Fatal(err)
	}
	name := fmt.Sprintf("hub_test_%d_%d", os.Getpid(), shared.seq.Add(1))
	if err := shared.exec(context.Background(), "CREATE DATABASE "+name+" TEMPLATE "+shared.template); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := shared.exec(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("drop test database: %v", err)
		}
	})
	return withDB(shared.adminURL, name)
}

// NewPool is NewDB with an open pool, closed when t ends.
func NewPool(t testing.TB) (*pgxpool.Pool, string) {
	t.Helper()
	u := NewDB(t)
	return Pool(t, u), u
}

// Pool opens a pool for u, closed when t ends.
func Pool(t testing.TB, u string) *pgxpool.Pool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pool, err := store.Connect(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// Cluster is a private PostgreSQL cluster of one test, with a migrated
// database "hub".
type Cluster struct {
	*localpg.Cluster
	URL string
}

// NewCluster starts a private cluster for t, stopped when t ends: for tests
// that hold write transactions open or stop the server.
func NewCluster(t testing.TB) *Cluster {
	t.Helper()
	dir, err := os.MkdirTemp("", "hubtest-")
	if err != nil {
		t.Fatal(err)
	}
	c, err := localpg.New(localpg.Config{Dir: dir, Settings: fastSettings})
	if err == nil {
		err = c.Start(context.Background())
	}
	if err != nil {
		os.RemoveAll(dir)
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Stop()
		os.RemoveAll(dir)
	})
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, c.URL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = conn.Exec(ctx, "CREATE DATABASE hub")
	conn.Close(ctx)
	if err != nil {
		t.Fatal(err)
	}
	u := c.URL("hub")
	if err := migrations.Up(u); err != nil {
		t.Fatal(err)
	}
	return &Cluster{Cluster: c, URL: u}
}

// Exec runs SQL statements on u, failing t on error.
func Exec(t testing.TB, pool *pgxpool.Pool, sql ...string) {
	t.Helper()
	for _, q := range sql {
		if _, err := pool.Exec(context.Background(), q); err != nil {
			t.Fatalf("%s: %v", strings.TrimSpace(q), err)
		}
	}
}
