package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

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

// target is the hub under test: one hubload started, or one given by -url.
type target struct {
	url         string // http://host:port
	adminToken  string
	databaseURL string
	pid         int // 0: unknown, no CPU or RSS figures
	pgPID       int // the postmaster; 0: unknown (-url)

	// Set when hubload started the hub.
	dir     string
	cluster *localpg.Cluster
	cmd     *exec.Cmd
	exited  chan struct{}
}

// openTarget returns the running hub of -url, or builds and starts one.
func openTarget(ctx context.Context, cfg config, log io.Writer) (*target, error) {
	if cfg.URL != "" {
		return &target{url: strings.TrimRight(cfg.URL, "/"), adminToken: cfg.AdminToken,
			databaseURL: cfg.DatabaseURL, pid: cfg.ServerPID}, nil
	}
	t := &target{}
	if err := t.start(ctx, cfg.HubEnv, log); err != nil {
		t.close(log)
		return nil, err
	}
	return t, nil
}

func (t *target) start(ctx context.Context, hubEnv []string, log io.Writer) error {
	dir, err := os.MkdirTemp("", "hubload-")
	if err != nil {
		return err
	}
	t.dir = dir
	// As root the server runs as postgres, which must reach the directory.
	if err := os.Chmod(dir, 0o755); err != nil {
		return err
	}
	bin := filepath.Join(dir, "hub")
	fmt.Fprintf(log, "building the hub into %s\n", bin)
	build := exec.CommandContext(ctx, "go", "build", "-ldflags="+hubLDFlags, "-o", bin, "github.com/hubdev/hub/server")
	build.Stdout, build.Stderr = log, log
	if err := build.Run(); err != nil {
		return fmt.Errorf("go build the hub: %w", err)
	}
	if err := t.startCluster(ctx, log); err != nil {
		return err
	}
	return t.startHub(ctx, bin, hubEnv, log)
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

// hubLDFlags are the Makefile's HUB_LDFLAGS, with which `make run` and
// `make build` build the hub.
const hubLDFlags = "-X=runtime.godebugDefault=adaptivestackstart=0"

// startHub runs bin on the private cluster and waits until it is ready.
func (t *target) startHub(ctx context.Context, bin string, hubEnv []string, log io.Writer) error {
	addr, err := freeAddr()
	if err != nil {
		return err
	}
	t.url, t.adminToken = "http://"+addr, rand.Text()
	env := []string{"DATABASE_URL=" + t.databaseURL, "HUB_ADMIN_TOKEN=" + t.adminToken,
		"HUB_ADDR=" + addr, "HUB_DEMO=false"}
	logPath := filepath.Join(t.dir, "hub.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return err
	}
	cmd := exec.Command(bin)
	cmd.Env = append(append(withoutHubEnv(os.Environ()), env...), hubEnv...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// The hub stops with hubload even when hubload is killed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM, Setpgid: true}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return fmt.Errorf("start the hub: %w", err)
	}
	t.cmd, t.pid, t.exited = cmd, cmd.Process.Pid, make(chan struct{})
	go func() { // ends when the hub exits; close waits for it
		defer close(t.exited)
		_ = cmd.Wait()
		logFile.Close()
	}()
	fmt.Fprintf(log, "hub pid %d on %s, log %s (extra env %v)\n", t.pid, t.url, logPath, hubEnv)
	return t.waitReady(ctx, logPath)
}

// withoutHubEnv drops the settings of the environment that would point the
// hub elsewhere.
func withoutHubEnv(env []string) []string {
	var out []string
	for _, kv := range env {
		if !strings.HasPrefix(kv, "HUB_") && !strings.HasPrefix(kv, "DATABASE_URL=") {
			out = append(out, kv)
		}
	}
	return out
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// waitReady polls /readyz for up to a minute.
func (t *target) waitReady(ctx context.Context, logPath string) error {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(time.Minute)
	client := &http.Client{Timeout: 2 * time.Second}
	for {
		if t.ready(ctx, client) {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.exited:
			return fmt.Errorf("the hub exited during start; see %s", logPath)
		case <-deadline:
			return fmt.Errorf("the hub not ready after 1m; see %s", logPath)
		case <-tick.C:
		}
	}
}

func (t *target) ready(ctx context.Context, client *http.Client) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.url+"/readyz", nil)
	if err != nil {
		return false
	}
	resp, err := client.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// close stops the hub and the cluster hubload started, and removes them.
func (t *target) close(log io.Writer) {
	if t.cmd != nil {
		_ = t.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-t.exited:
		case <-time.After(15 * time.Second):
			fmt.Fprintln(log, "the hub did not stop within 15s; killing it")
			_ = t.cmd.Process.Kill()
			<-t.exited
		}
	}
	if t.cluster != nil {
		t.cluster.Stop()
	}
	if t.dir != "" {
		reportHubLog(filepath.Join(t.dir, "hub.log"), log)
	}
	if t.dir != "" {
		if err := os.RemoveAll(t.dir); err != nil {
			fmt.Fprintf(log, "remove %s: %v\n", t.dir, err)
		}
	}
}

// reportHubLog copies the started hub's warnings and errors to log before
// its directory goes, at most maxLogLines of them.
func reportHubLog(path string, log io.Writer) {
	const maxLogLines = 20
	b, err := os.ReadFile(path)
	if err != nil {
		return
	}
	n := 0
	for line := range strings.Lines(string(b)) {
		if strings.Contains(line, "level=WARN") || strings.Contains(line, "level=ERROR") {
			if n++; n <= maxLogLines {
				fmt.Fprint(log, "hub: ", line)
			}
		}
	}
	if n > maxLogLines {
		fmt.Fprintf(log, "hub: %d more warnings and errors\n", n-maxLogLines)
	}
}
