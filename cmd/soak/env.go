package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hubdev/hub/migrations"
	"github.com/hubdev/hub/store/localpg"
)

// env is what the soak runs against: a database URL and a hub base URL,
// with whatever it started to get them.
type env struct {
	databaseURL string
	hubURL      string
	hubLog      string // the started hub's stderr, "" when not started here
	cleanup     []func()
}

func (e *env) close() {
	for i := len(e.cleanup) - 1; i >= 0; i-- {
		e.cleanup[i]()
	}
}

// setup starts what c does not name.
func setup(ctx context.Context, c config) (_ *env, err error) {
	e := &env{databaseURL: c.databaseURL, hubURL: c.url}
	defer func() {
		if err != nil {
			e.close()
		}
	}()
	dir, err := os.MkdirTemp("", "hubsoak-")
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(dir, 0o755); err != nil { // the postgres user must reach it when run as root
		return nil, err
	}
	e.cleanup = append(e.cleanup, func() { os.RemoveAll(dir) })
	if e.databaseURL == "" {
		if e.databaseURL, err = startCluster(ctx, e, filepath.Join(dir, "pg")); err != nil {
			return nil, err
		}
	}
	if e.hubURL == "" {
		if e.hubURL, err = startHub(ctx, e, c.hubBin, dir); err != nil {
			return nil, err
		}
	}
	return e, waitReady(ctx, e.hubURL)
}

func startCluster(ctx context.Context, e *env, dir string) (string, error) {
	cl, err := localpg.New(localpg.Config{Dir: dir, Settings: map[string]string{
		"fsync": "off", "synchronous_commit": "off", "max_connections": "200",
	}})
	if err != nil {
		return "", err
	}
	if err := cl.Start(ctx); err != nil {
		return "", err
	}
	e.cleanup = append(e.cleanup, cl.Stop)
	conn, err := pgx.Connect(ctx, cl.URL("postgres"))
	if err != nil {
		return "", err
	}
	_, err = conn.Exec(ctx, "CREATE DATABASE hub")
	conn.Close(ctx)
	if err != nil {
		return "", err
	}
	u := cl.URL("hub")
	return u, migrations.Up(u)
}

var listeningRE = regexp.MustCompile(`^  listening on: +(\S+)`)

// startHub runs the hub binary (built first when bin is empty) against
// e.databaseURL and returns its base URL.
func startHub(ctx context.Context, e *env, bin, dir string) (string, error) {
	if bin == "" {
		bin = filepath.Join(dir, "hub")
		out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, "./server").CombinedOutput()
		if err != nil {
			return "", fmt.Errorf("go build ./server (run the soak from the repository root or pass -hub-bin): %v\n%s", err, out)
		}
	}
	token := make([]byte, 16)
	_, _ = rand.Read(token)
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), "DATABASE_URL="+e.databaseURL, "HUB_ADMIN_TOKEN="+hex.EncodeToString(token),
		"HUB_ADDR=127.0.0.1:0", "HUB_NODE_ID=soak")
	e.hubLog = filepath.Join(filepath.Dir(dir), filepath.Base(dir)+"-hub.log")
	logFile, err := os.Create(e.hubLog)
	if err != nil {
		return "", err
	}
	cmd.Stderr = logFile
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		logFile.Close()
		return "", err
	}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return "", err
	}
	found := make(chan string, 1)
	exited := make(chan struct{})
	go func() { // ends with the process, waited for in cleanup
		sc := bufio.NewScanner(stdout)
		for sc.Scan() { // reads stdout to EOF so the hub never blocks on it
			if m := listeningRE.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case found <- m[1]:
				default:
				}
			}
		}
		_ = cmd.Wait()
		logFile.Close()
		close(exited)
	}()
	e.cleanup = append(e.cleanup, func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	select {
	case u := <-found:
		return u, nil
	case <-exited:
		return "", fmt.Errorf("the hub exited before printing its address; see %s", e.hubLog)
	case <-time.After(time.Minute):
		return "", errors.New("the hub printed no address within a minute")
	}
}

// waitReady waits for /readyz to answer 200.
func waitReady(ctx context.Context, base string) error {
	deadline := time.Now().Add(time.Minute)
	for {
		resp, err := http.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s/readyz not 200 within a minute (last error: %v)", base, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// hubMetrics are the figures the soak compares between start and end.
type hubMetrics struct {
	RSS, Goroutines, FDs, Connections float64
}

// scrape reads them from the hub's /metrics.
func scrape(base string) (hubMetrics, error) {
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		return hubMetrics{}, err
	}
	defer resp.Body.Close()
	var m hubMetrics
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		name, value, ok := strings.Cut(line, " ")
		if !ok || strings.HasPrefix(line, "#") {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
		if err != nil {
			continue
		}
		switch {
		case name == "process_resident_memory_bytes":
			m.RSS = v
		case name == "go_goroutines":
			m.Goroutines = v
		case name == "process_open_fds":
			m.FDs = v
		case strings.HasPrefix(name, "hub_connections{"):
			m.Connections += v
		}
	}
	return m, sc.Err()
}
