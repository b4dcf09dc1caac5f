package centrifugo

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

// Server is a running Centrifugo process.
type Server struct {
	// URL is the HTTP server, e.g. http://127.0.0.1:8000: the WebSocket
	// endpoint is URL+"/connection/websocket".
	URL string
	// PID is the process, for its CPU and memory.
	PID int
	// LogPath is the file its output goes to.
	LogPath string

	cmd    *exec.Cmd
	exited chan struct{} // closed when the process has been waited for
}

// Start writes cfg into dir/centrifugo.json, runs bin with it (output
// appended to dir/centrifugo.log, so that a restart keeps the earlier
// lines) and waits up to a minute until /health answers. The process gets
// SIGTERM when the caller's process ends.
func Start(ctx context.Context, bin, dir string, cfg Config) (*Server, error) {
	file, err := cfg.File()
	if err != nil {
		return nil, err
	}
	cfgPath := filepath.Join(dir, "centrifugo.json")
	if err := os.WriteFile(cfgPath, file, 0o600); err != nil {
		return nil, err
	}
	s := &Server{URL: "http://" + cfg.Addr, LogPath: filepath.Join(dir, "centrifugo.log"), exited: make(chan struct{})}
	logFile, err := os.OpenFile(s.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	s.cmd = exec.Command(bin, "--config", cfgPath)
	s.cmd.Stdout, s.cmd.Stderr = logFile, logFile
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM, Setpgid: true}
	if err := s.cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("start Centrifugo: %w", err)
	}
	s.PID = s.cmd.Process.Pid
	go func() { // ends when the process exits; Stop waits for it
		defer close(s.exited)
		_ = s.cmd.Wait()
		logFile.Close()
	}()
	if err := s.waitReady(ctx); err != nil {
		s.Stop()
		return nil, err
	}
	return s, nil
}

func (s *Server) waitReady(ctx context.Context) error {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(time.Minute)
	client := &http.Client{Timeout: 2 * time.Second}
	for {
		if s.healthy(ctx, client) {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.exited:
			return fmt.Errorf("centrifugo exited during start; see %s", s.LogPath)
		case <-deadline:
			return fmt.Errorf("centrifugo not ready after 1m; see %s", s.LogPath)
		case <-tick.C:
		}
	}
}

func (s *Server) healthy(ctx context.Context, client *http.Client) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+"/health", nil)
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

// Exited is closed when the process has ended.
func (s *Server) Exited() <-chan struct{} { return s.exited }

// Stop ends the process with SIGTERM, or SIGKILL after 15 seconds, and
// waits for it.
func (s *Server) Stop() {
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(15 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
}
