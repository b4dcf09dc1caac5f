package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
	"github.com/jackc/pgx/v5"
)

// hubTrigger is the capture trigger hub.attach creates on a table, and
// hubUpdateTrigger the second one, for UPDATE, of a table whose INSERTs or
// DELETEs are captured too (migrations/0008_raw_capture.up.sql).
const (
	hubTrigger       = "hub_capture"
	hubUpdateTrigger = "hub_capture_update"
)

// hubServer is the hub under test: one hubload started, or one given by
// -url.
type hubServer struct {
	url        string // http://host:port
	adminToken string
	procID     int // 0: unknown, no CPU or RSS figures
	channel    string
	admin      *admin
	keys       []string // client i's API key
	keyIDs     []int64  // to revoke at the end

	// Set when hubload started the hub.
	bin, addr, dir, databaseURL string
	env                         []string
	cmd                         *exec.Cmd
	exited                      chan struct{}
}

// externalHub is the running hub of -url.
func externalHub(ctx context.Context, cfg config, log io.Writer) (*hubServer, error) {
	h := &hubServer{url: strings.TrimRight(cfg.URL, "/"), adminToken: cfg.AdminToken, procID: cfg.ServerPID, channel: cfg.channel()}
	if err := h.createKeys(ctx, cfg, log); err != nil {
		h.close(log)
		return nil, err
	}
	return h, nil
}

// startHub builds the hub into dir, runs it on databaseURL and creates the
// clients' keys.
func startHub(ctx context.Context, cfg config, dir, databaseURL string, log io.Writer) (*hubServer, error) {
	h := &hubServer{bin: filepath.Join(dir, "hub"), dir: dir, databaseURL: databaseURL, env: cfg.HubEnv, channel: cfg.channel()}
	fmt.Fprintf(log, "building the hub into %s\n", h.bin)
	build := exec.CommandContext(ctx, "go", "build", "-ldflags="+hubLDFlags, "-o", h.bin, "github.com/hubdev/hub/server")
	build.Stdout, build.Stderr = log, log
	if err := build.Run(); err != nil {
		return nil, fmt.Errorf("go build the hub: %w", err)
	}
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	h.addr, h.url, h.adminToken = addr, "http://"+addr, rand.Text()
	if err := h.start(ctx, log); err != nil {
		h.close(log)
		return nil, err
	}
	if err := h.createKeys(ctx, cfg, log); err != nil {
		h.close(log)
		return nil, err
	}
	return h, nil
}

// hubLDFlags are the Makefile's HUB_LDFLAGS, with which `make run` and
// `make build` build the hub.
const hubLDFlags = "-X=runtime.godebugDefault=adaptivestackstart=0"

// start runs the hub binary and waits until it is ready.
func (h *hubServer) start(ctx context.Context, log io.Writer) error {
	env := []string{"DATABASE_URL=" + h.databaseURL, "HUB_ADMIN_TOKEN=" + h.adminToken,
		"HUB_ADDR=" + h.addr, "HUB_DEMO=false"}
	logPath := filepath.Join(h.dir, "hub.log")
	// A restart appends, so that the end of the invocation reports every
	// process's warnings.
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(h.bin)
	cmd.Env = append(append(withoutHubEnv(os.Environ()), env...), h.env...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// The hub stops with hubload even when hubload is killed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM, Setpgid: true}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return fmt.Errorf("start the hub: %w", err)
	}
	h.cmd, h.procID, h.exited = cmd, cmd.Process.Pid, make(chan struct{})
	exited := h.exited
	go func() { // ends when the hub exits; stop waits for it
		defer close(exited)
		_ = cmd.Wait()
		logFile.Close()
	}()
	fmt.Fprintf(log, "hub pid %d on %s, log %s (extra env %v)\n", h.procID, h.url, logPath, h.env)
	return waitReady(ctx, h.url+"/readyz", exited, "the hub", logPath)
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

// stop ends the hub hubload started and waits for it.
func (h *hubServer) stop(log io.Writer) {
	if h.cmd == nil {
		return
	}
	_ = h.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-h.exited:
	case <-time.After(15 * time.Second):
		fmt.Fprintln(log, "the hub did not stop within 15s; killing it")
		_ = h.cmd.Process.Kill()
		<-h.exited
	}
	h.cmd = nil
}

func (h *hubServer) restart(ctx context.Context) error {
	if h.bin == "" {
		return fmt.Errorf("cannot restart the hub of -url")
	}
	h.stop(io.Discard)
	return h.start(ctx, io.Discard)
}

// close revokes the keys and stops the hub hubload started.
func (h *hubServer) close(log io.Writer) {
	h.revokeKeys(log)
	h.stop(log)
	if h.dir != "" {
		reportLog(filepath.Join(h.dir, "hub.log"), "hub: ", []string{"level=WARN", "level=ERROR"}, log)
	}
}

func (h *hubServer) name() string    { return hubName }
func (h *hubServer) pid() int        { return h.procID }
func (h *hubServer) baseURL() string { return h.url }
func (h *hubServer) trigger() string { return hubTrigger }

// createKeys creates the hub clients and their keys through the admin API:
// one key per -conns-per-key clients of each.
func (h *hubServer) createKeys(ctx context.Context, cfg config, log io.Writer) error {
	h.admin = newAdmin(h.url, h.adminToken)
	names := []string{globalClient}
	if cfg.Tenants > 0 {
		names = names[:0]
		for i := range cfg.Tenants {
			names = append(names, tenantName(i))
		}
	}
	fmt.Fprintf(log, "creating %d hub client(s) and their keys through the admin API\n", len(names))
	byName := map[string][]string{}
	for _, name := range names {
		if err := h.admin.clientCreate(ctx, name); err != nil {
			return err
		}
		share := (cfg.Clients + len(names) - 1) / len(names)
		for range (share + cfg.ConnsPerKey - 1) / cfg.ConnsPerKey {
			k, err := h.admin.keyCreate(ctx, name, maxKeyConnections)
			if err != nil {
				return err
			}
			h.keyIDs = append(h.keyIDs, k.ID)
			byName[name] = append(byName[name], k.Key)
		}
	}
	for i := range cfg.Clients {
		keys := byName[names[i%len(names)]]
		h.keys = append(h.keys, keys[(i/len(names))/cfg.ConnsPerKey%len(keys)])
	}
	return nil
}

// revokeKeys revokes the run's keys; it runs after ctx may have ended.
func (h *hubServer) revokeKeys(log io.Writer) {
	if h.admin == nil || h.bin != "" {
		return // no keys, or they go with the private cluster
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, id := range h.keyIDs {
		if err := h.admin.keyRevoke(ctx, id); err != nil {
			fmt.Fprintf(log, "revoke key %d: %v\n", id, err)
			return
		}
	}
}

// subscribe opens one protocol A connection (SPEC §4) and waits for its
// "subscribed" reply.
func (h *hubServer) subscribe(ctx context.Context, d *websocket.Dialer, i int) (*websocket.Conn, error) {
	return dialAndHandshake(ctx, d, h.url, "/ws/subscribe", func(conn *websocket.Conn) error {
		req, _ := json.Marshal(map[string]any{"type": "subscribe", "apiKey": h.keys[i], "channels": []string{h.channel}})
		if err := conn.WriteMessage(websocket.TextMessage, req); err != nil {
			return fmt.Errorf("send subscribe: %w", err)
		}
		_, msg, err := conn.ReadMessage()
		if err == nil && !bytes.HasPrefix(msg, []byte(`{"type":"subscribed"`)) {
			err = fmt.Errorf("subscribe answered %s", msg)
		}
		return err
	})
}

func (h *hubServer) decoder(channel string, scan bool) decodeFunc {
	switch {
	case channel == "orders" && scan:
		return hubScan(hubOrderKeys)
	case channel == "orders":
		return hubJSON[orderRow]()
	case scan:
		return hubScan(hubScoreKeys)
	default:
		return hubJSON[scoreRow]()
	}
}

// hubLedger counts the run's events in hub.events: what the hub must
// deliver, whatever the writers believe they committed.
type hubLedger struct {
	ctl      *pgx.Conn
	channel  string
	baseline int64 // the newest event before the run
}

func (h *hubServer) openLedger(ctx context.Context, ctl *pgx.Conn) (ledger, error) {
	id, err := lastEventID(ctx, ctl)
	return &hubLedger{ctl: ctl, channel: h.channel, baseline: id}, err
}

func (l *hubLedger) committed(ctx context.Context, _ writeResult) (map[string]uint64, error) {
	return committedEvents(ctx, l.ctl, l.channel, l.baseline)
}

func (l *hubLedger) settle(context.Context, *result) error { return nil }

// waitReady polls url for up to a minute until it answers 200.
func waitReady(ctx context.Context, url string, exited <-chan struct{}, what, logPath string) error {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(time.Minute)
	client := &http.Client{Timeout: 2 * time.Second}
	for {
		if ready(ctx, client, url) {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-exited:
			return fmt.Errorf("%s exited during start; see %s", what, logPath)
		case <-deadline:
			return fmt.Errorf("%s not ready after 1m; see %s", what, logPath)
		case <-tick.C:
		}
	}
}

func ready(ctx context.Context, client *http.Client, url string) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
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
