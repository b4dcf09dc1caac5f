package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hubdev/hub/migrations"
	"github.com/hubdev/hub/server/demo"
	"github.com/hubdev/hub/store"
	"github.com/hubdev/hub/store/storetest"
)

// output collects what a hub writes and lets a test wait for a line.
type output struct {
	mu   sync.Mutex // guards buf, grew
	buf  bytes.Buffer
	grew chan struct{} // closed and replaced on every write
}

func newOutput() *output { return &output{grew: make(chan struct{})} }

func (o *output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.buf.Write(p)
	close(o.grew)
	o.grew = make(chan struct{})
	return len(p), nil
}

func (o *output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}

// waitLine returns the value of the banner line "  name: value" once it is
// written; it fails t if stopped closes or a minute passes first.
func (o *output) waitLine(t *testing.T, name string, stopped <-chan struct{}) string {
	t.Helper()
	re := regexp.MustCompile(`(?m)^  ` + regexp.QuoteMeta(name) + `: +(\S+)`)
	timeout := time.NewTimer(time.Minute)
	defer timeout.Stop()
	for {
		o.mu.Lock()
		m := re.FindStringSubmatch(o.buf.String())
		grew := o.grew
		o.mu.Unlock()
		if m != nil {
			return m[1]
		}
		select {
		case <-grew:
		case <-stopped:
			t.Fatalf("hub stopped before printing %q; stdout:\n%s", name, o.String())
		case <-timeout.C:
			t.Fatalf("hub printed no %q within a minute; stdout:\n%s", name, o.String())
		}
	}
}

// testLog passes a hub's log lines to t.
type testLog struct{ t *testing.T }

func (l testLog) Write(p []byte) (int, error) {
	l.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// waitHealthy polls url + "/healthz" until it answers 200.
func waitHealthy(t *testing.T, url string) {
	t.Helper()
	waitOK(t, url+"/healthz")
}

// waitOK polls url until it answers 200.
func waitOK(t *testing.T, url string) {
	t.Helper()
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(30 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not 200 within 30s (last error: %v)", url, err)
		}
		<-tick.C
	}
}

// buildHub builds the binary as a user would run it.
func buildHub(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "hub")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	require.NoError(t, err, "go build: %s", out)
	return bin
}

// hubProcess is a running hub binary.
type hubProcess struct {
	cmd    *exec.Cmd
	stdout *output
	exited chan struct{} // closed when the process has exited
	err    error         // its exit status, set before exited closes
}

// startHub runs bin with env on top of this process's environment less
// the hub's own variables. The process is killed if t ends first.
func startHub(t *testing.T, bin string, env ...string) *hubProcess {
	t.Helper()
	cmd := exec.Command(bin)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "HUB_") && !strings.HasPrefix(kv, "DATABASE_URL=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, env...)
	p := &hubProcess{cmd: cmd, stdout: newOutput(), exited: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.stdout, testLog{t}
	require.NoError(t, cmd.Start())
	go func() { // ends when the process exits; the cleanup below waits for it
		p.err = cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.exited
	})
	return p
}

// stop sends SIGTERM and requires a clean exit within 10 s (SPEC §9).
func (p *hubProcess) stop(t *testing.T) {
	t.Helper()
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	timeout := time.NewTimer(10 * time.Second)
	defer timeout.Stop()
	select {
	case <-p.exited:
		require.NoError(t, p.err, "exit status")
	case <-timeout.C:
		t.Fatal("hub did not exit within 10s of SIGTERM")
	}
}

// reachableTempDir is a temporary directory that the postgres user can
// search when the test runs as root.
func reachableTempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "hub-run-")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	require.NoError(t, os.Chmod(dir, 0o755))
	return dir
}

func TestServeEmbeddedKeepsDataAcrossRestarts(t *testing.T) {
	t.Parallel()
	bin := buildHub(t)
	dataDir := filepath.Join(reachableTempDir(t), "data")
	env := []string{"HUB_DATA_DIR=" + dataDir, "HUB_ADDR=127.0.0.1:0"}
	ctx := context.Background()

	first := startHub(t, bin, env...)
	url := first.stdout.waitLine(t, "listening on", first.exited)
	waitHealthy(t, url)
	waitOK(t, url+"/readyz") // once the reader's listener is up
	dbURL := first.stdout.waitLine(t, "database", first.exited)
	token := first.stdout.waitLine(t, "admin token", first.exited)
	key1 := first.stdout.waitLine(t, "demo API key", first.exited)
	pool, err := store.Connect(ctx, dbURL)
	require.NoError(t, err)
	_, err = store.New(pool).ClientCreate(ctx, "kept")
	require.NoError(t, err)
	pool.Close()
	first.stop(t)

	fi, err := os.Stat(filepath.Join(dataDir, adminTokenFile))
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())

	second := startHub(t, bin, env...)
	url = second.stdout.waitLine(t, "listening on", second.exited)
	waitHealthy(t, url)
	require.Equal(t, dbURL, second.stdout.waitLine(t, "database", second.exited))
	require.Equal(t, token, second.stdout.waitLine(t, "admin token", second.exited), "the admin token is kept")
	key2 := second.stdout.waitLine(t, "demo API key", second.exited)
	require.NotEqual(t, key1, key2, "each start replaces the demo key")

	pool, err = store.Connect(ctx, dbURL)
	require.NoError(t, err)
	defer pool.Close()
	st := store.New(pool)
	_, err = st.ClientGet(ctx, "kept")
	require.NoError(t, err, "a row written in the first run survives the restart")
	keys, err := st.APIKeyList(ctx, demo.Client)
	require.NoError(t, err)
	require.Len(t, keys, 2)
	old, err := st.APIKeyLookup(ctx, key1)
	require.NoError(t, err)
	require.NotNil(t, old.RevokedAt, "the previous demo key is revoked")
	cur, err := st.APIKeyLookup(ctx, key2)
	require.NoError(t, err)
	require.Nil(t, cur.RevokedAt)
	pool.Close()
	second.stop(t)
}

// runCmd runs the program in-process and returns its stdout.
func runCmd(t *testing.T, env map[string]string, args ...string) (string, error) {
	t.Helper()
	var stdout bytes.Buffer
	err := run(context.Background(), args, envOf(env), &stdout, testLog{t})
	return stdout.String(), err
}

func TestMigrateCommand(t *testing.T) {
	t.Parallel()
	u := storetest.NewDB(t)
	env := map[string]string{"DATABASE_URL": u}
	latest := fmt.Sprintf("%d\n", migrations.Latest)
	steps := []struct{ cmd, want string }{
		{"version", latest},
		{"up", latest},
		{"down", "0\n"},
		{"version", "0\n"},
		{"up", latest},
		{"version", latest},
	}
	for _, s := range steps {
		out, err := runCmd(t, env, "migrate", s.cmd)
		require.NoError(t, err, "hub migrate %s", s.cmd)
		require.Equal(t, s.want, out, "hub migrate %s", s.cmd)
	}
}

// `hub migrate` reads only what it uses (migrateVars): settings that only
// serving uses, missing or bad, stop the hub but not a migration.
func TestMigrateReadsOnlyItsVariables(t *testing.T) {
	t.Parallel()
	u := storetest.NewDB(t)
	latest := fmt.Sprintf("%d\n", migrations.Latest)
	for _, env := range []map[string]string{
		{"DATABASE_URL": u},
		{
			"DATABASE_URL": u, "HUB_ADMIN_TOKEN": "short", "HUB_ADDR": "nowhere", "HUB_TLS_CERT": "cert.pem",
			"HUB_MAX_LAG": "soon", "HUB_SEND_BUFFER": "0", "HUB_DEMO": "maybe", "HUB_PPROF_ADDR": "6060",
		},
	} {
		out, err := runCmd(t, env, "migrate", "version")
		require.NoError(t, err, "hub migrate version with %v", env)
		require.Equal(t, latest, out)
		_, err = runCmd(t, env, "serve")
		require.Error(t, err, "hub serve with %v", env)
		require.Contains(t, err.Error(), "HUB_ADMIN_TOKEN: ")
	}
}

func TestCommandErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args []string
		env  map[string]string
		want string
	}{
		{[]string{"migrate"}, nil, "usage: hub migrate up|down|version"},
		{[]string{"migrate", "sideways"}, nil, "usage: hub migrate up|down|version"},
		{[]string{"serve", "now"}, nil, "serve takes no arguments; run `hub help`"},
		{[]string{"launch"}, nil, "unknown command \"launch\"; run `hub help`"},
		{nil, map[string]string{"DATABASE_URL": "postgres:///hub"}, "HUB_ADMIN_TOKEN: required when DATABASE_URL is set"},
		{[]string{"serve"}, map[string]string{"DATABASE_URL": "postgres:///hub"}, "HUB_ADMIN_TOKEN: required when DATABASE_URL is set"},
		{nil, map[string]string{"HUB_SEND_BUFFER": "0"}, "HUB_SEND_BUFFER: must be at least 1"},
		// What migrate uses is checked, every bad variable at once; nothing
		// else is, so the admin token's error is not among them.
		{[]string{"migrate", "up"}, map[string]string{"DATABASE_URL": "postgres://hub@db:notaport/hub", "HUB_ADMIN_TOKEN": "short"},
			"DATABASE_URL: not a valid PostgreSQL connection string"},
		{[]string{"migrate", "version"}, map[string]string{"HUB_DATA_DIR": "a\x00b", "HUB_NODE_ID": "a\nb", "HUB_MAX_LAG": "soon"},
			"HUB_NODE_ID: must be at most 128 printable characters\nHUB_DATA_DIR: not a path"},
	}
	for _, tt := range tests {
		_, err := runCmd(t, tt.env, tt.args...)
		require.EqualError(t, err, tt.want, "hub %v", tt.args)
	}
}

func TestServeExternalDatabase(t *testing.T) {
	t.Parallel()
	u := storetest.NewDB(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stdout, stderr := newOutput(), newOutput()
	env := envOf(map[string]string{"DATABASE_URL": u, "HUB_ADMIN_TOKEN": "test-admin-token-0123456789", "HUB_ADDR": "127.0.0.1:0"})
	stopped := make(chan struct{})
	var runErr error
	go func() { // ends when ctx is cancelled below
		defer close(stopped)
		runErr = run(ctx, nil, env, stdout, io.MultiWriter(stderr, testLog{t}))
	}()
	url := stdout.waitLine(t, "listening on", stopped)
	waitHealthy(t, url)
	waitOK(t, url+"/readyz") // once the reader's listener is up
	require.NotContains(t, stdout.String(), "test-admin-token", "a given admin token is not printed")

	cancel()
	timeout := time.NewTimer(10 * time.Second)
	defer timeout.Stop()
	select {
	case <-stopped:
		require.NoError(t, runErr)
	case <-timeout.C:
		t.Fatal("run did not return within 10s of cancellation")
	}
	require.Contains(t, stderr.String(), "hub stopped")
	require.NotContains(t, stderr.String(), "test-admin-token", "secrets never reach the log")
}

func TestReadiness(t *testing.T) {
	t.Parallel()
	pool, u := storetest.NewPool(t)
	r := &readiness{db: openSQL(t, pool), log: discardLogger()}
	ctx := context.Background()
	require.EqualError(t, r.check(ctx), "listener not connected")
	r.listening.Store(true)
	require.NoError(t, r.check(ctx))

	require.NoError(t, migrations.Down(u))
	require.EqualError(t, r.check(ctx), "schema not current")
	require.True(t, r.failing)
	require.NoError(t, migrations.Up(u))
	require.NoError(t, r.check(ctx))

	cctx, cancel := context.WithCancel(ctx)
	cancel()
	err := r.check(cctx)
	require.EqualError(t, err, "database unavailable")
	require.False(t, errors.Is(err, context.Canceled), "the prober learns nothing about internals")
}
