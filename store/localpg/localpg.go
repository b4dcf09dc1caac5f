// Package localpg runs a private PostgreSQL cluster from the server binaries
// installed on the machine: the embedded default of `make run` (SPEC §9) and
// the throwaway clusters of the tests. It shells out to initdb and postgres
// and knows nothing about the hub's schema.
//
// The postmaster is a child of this process: Stop ends it, and if this
// process dies first the kernel sends it SIGQUIT (Pdeathsig), so a crashed
// test binary leaves no server behind.
package localpg

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ErrNoBinaries means no PostgreSQL server binaries were found.
var ErrNoBinaries = errors.New("PostgreSQL server binaries (initdb, postgres) not found on PATH or under /usr/lib/postgresql/*/bin; " +
	"install them (Debian/Ubuntu: apt-get install postgresql) or set DATABASE_URL")

// Config describes a cluster.
type Config struct {
	// Dir holds the data directory (Dir/data), the socket and the log. It
	// is created if missing; an existing cluster in it is reused.
	Dir string
	// Settings are extra postgres -c settings, e.g. "fsync": "off".
	Settings map[string]string
}

// Cluster is one running (or stopped) private PostgreSQL server.
type Cluster struct {
	cfg  Config
	bin  string
	cred *syscall.Credential // nil: run as ourselves

	mu   sync.Mutex // guards cmd, done
	cmd  *exec.Cmd
	done chan struct{}
}

// FindBinaries returns the directory holding initdb and postgres: PATH first,
// then the newest /usr/lib/postgresql/<version>/bin.
func FindBinaries() (string, error) {
	if p, err := exec.LookPath("initdb"); err == nil {
		dir := filepath.Dir(p)
		if _, err := os.Stat(filepath.Join(dir, "postgres")); err == nil {
			return dir, nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return versionOf(dirs[i]) > versionOf(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	return "", ErrNoBinaries
}

func versionOf(binDir string) float64 {
	v, _ := strconv.ParseFloat(filepath.Base(filepath.Dir(binDir)), 64)
	return v
}

// New prepares a cluster in cfg.Dir, running initdb when the directory holds
// no cluster yet. As root, the server runs as the postgres user, which must
// be able to reach cfg.Dir (see Reachable).
func New(cfg Config) (*Cluster, error) {
	bin, err := FindBinaries()
	if err != nil {
		return nil, err
	}
	c := &Cluster{cfg: cfg, bin: bin}
	if os.Geteuid() == 0 {
		cred, err := postgresUser()
		if err != nil {
			return nil, err
		}
		c.cred = cred
	}
	if err := c.mkdir(cfg.Dir); err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(c.DataDir(), "PG_VERSION")); err == nil {
		return c, nil
	}
	if err := c.mkdir(c.DataDir()); err != nil {
		return nil, err
	}
	out, err := c.command("initdb", "-D", c.DataDir(), "-U", "postgres", "--auth=trust",
		"-E", "UTF8", "--locale=C", "--no-sync").CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("initdb in %s: %w\n%s", c.DataDir(), err, out)
	}
	return c, nil
}

func postgresUser() (*syscall.Credential, error) {
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("running as root, the private PostgreSQL runs as the postgres user, which does not exist: %w", err)
	}
	uid, _ := strconv.ParseUint(u.Uid, 10, 32)
	gid, _ := strconv.ParseUint(u.Gid, 10, 32)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

// Reachable reports whether the user the server would run as can search
// every directory above dir; as root that is the postgres user.
func Reachable(dir string) bool {
	if os.Geteuid() != 0 {
		return true
	}
	cred, err := postgresUser()
	if err != nil {
		return false
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return false
	}
	for p := filepath.Dir(abs); ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err != nil {
			return false
		}
		if !searchable(fi, cred) {
			return false
		}
		if p == "/" {
			return true
		}
	}
}

func searchable(fi os.FileInfo, cred *syscall.Credential) bool {
	st, ok := fi.Sys().(*syscall.Stat_t)
	mode := fi.Mode().Perm()
	if !ok {
		return mode&0o001 != 0
	}
	switch {
	case st.Uid == cred.Uid:
		return mode&0o100 != 0
	case st.Gid == cred.Gid:
		return mode&0o010 != 0
	default:
		return mode&0o001 != 0
	}
}

func (c *Cluster) mkdir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if c.cred != nil {
		return os.Chown(dir, int(c.cred.Uid), int(c.cred.Gid))
	}
	return nil
}

func (c *Cluster) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(c.bin, name), args...)
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred, Setpgid: true}
	return cmd
}

// DataDir is the PostgreSQL data directory.
func (c *Cluster) DataDir() string { return filepath.Join(c.cfg.Dir, "data") }

// SocketDir holds the server's Unix socket; the server listens on no TCP port.
func (c *Cluster) SocketDir() string { return c.cfg.Dir }

// URL is a connection string for database db as the superuser postgres.
func (c *Cluster) URL(db string) string {
	return fmt.Sprintf("postgres://postgres@/%s?host=%s&sslmode=disable", db, c.SocketDir())
}

// Start runs the postmaster and waits until it accepts connections.
func (c *Cluster) Start(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cmd != nil {
		return errors.New("postgres already running")
	}
	sock := filepath.Join(c.SocketDir(), ".s.PGSQL.5432")
	if len(sock) > 100 {
		return fmt.Errorf("socket path %s is too long for a Unix socket; choose a shorter directory", sock)
	}
	args := []string{"-D", c.DataDir(), "-c", "listen_addresses=", "-c", "unix_socket_directories=" + c.SocketDir()}
	keys := make([]string, 0, len(c.cfg.Settings))
	for k := range c.cfg.Settings {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		args = append(args, "-c", k+"="+c.cfg.Settings[k])
	}
	cmd := c.command("postgres", args...)
	cmd.SysProcAttr.Pdeathsig = syscall.SIGQUIT
	logFile, err := os.OpenFile(filepath.Join(c.cfg.Dir, "postgres.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return fmt.Errorf("start postgres: %w", err)
	}
	done := make(chan struct{})
	go func() { // ends when the postmaster exits; Stop waits for it
		defer close(done)
		_ = cmd.Wait()
		logFile.Close()
	}()
	c.cmd, c.done = cmd, done
	if err := c.waitReady(ctx, done); err != nil {
		c.stopLocked(syscall.SIGQUIT)
		return err
	}
	return nil
}

// waitReady polls postmaster.pid until the server says it is ready.
func (c *Cluster) waitReady(ctx context.Context, exited <-chan struct{}) error {
	pidFile := filepath.Join(c.DataDir(), "postmaster.pid")
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	timeout := time.After(60 * time.Second)
	for {
		if b, err := os.ReadFile(pidFile); err == nil {
			lines := strings.Split(string(b), "\n")
			if len(lines) > 7 && strings.TrimSpace(lines[7]) == "ready" &&
				strings.TrimSpace(lines[0]) == strconv.Itoa(c.cmd.Process.Pid) {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-exited:
			return fmt.Errorf("postgres exited during start; see %s", filepath.Join(c.cfg.Dir, "postgres.log"))
		case <-timeout:
			return fmt.Errorf("postgres not ready after 60s; see %s", filepath.Join(c.cfg.Dir, "postgres.log"))
		case <-t.C:
		}
	}
}

// Stop shuts the server down (fast shutdown: open sessions are
// disconnected, committed data is kept) and waits for it to exit.
func (c *Cluster) Stop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stopLocked(syscall.SIGINT)
}

// Kill stops the server the way a crash would (immediate shutdown).
func (c *Cluster) Kill() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stopLocked(syscall.SIGQUIT)
}

// stopLocked must be called with c.mu held.
func (c *Cluster) stopLocked(sig syscall.Signal) {
	if c.cmd == nil {
		return
	}
	_ = c.cmd.Process.Signal(sig)
	select {
	case <-c.done:
	case <-time.After(30 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.done
	}
	c.cmd, c.done = nil, nil
}
