package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Config is the hub's configuration, read from the environment once at
// start (SPEC §9). Only package main reads the environment; it hands each
// component its own Config.
type Config struct {
	DatabaseURL       string // "": a private cluster in DataDir
	Addr              string
	AdminToken        string // required with DatabaseURL; generated in the embedded mode
	TLSCert, TLSKey   string // both or neither
	AuthTimeout       time.Duration
	HeartbeatInterval time.Duration
	EOSparkHeartbeat  time.Duration
	SendBuffer        int
	SnapshotMaxRows   int
	MaxMessageBytes   int
	MaxLag            time.Duration
	WriteTimeout      time.Duration
	EventRetention    time.Duration
	NodeID            string
	DataDir           string
	// DataDirExplicit: HUB_DATA_DIR was given, so the embedded mode must use
	// it as is rather than fall back to /var/tmp.
	DataDirExplicit bool
	Demo            bool
	demoSet         bool
	PprofAddr       string // "": no profiling endpoint
	// MaxPending and MaxPendingPerAddr cap the connections that have not
	// authenticated yet, per node and per remote IP address (issue 12).
	MaxPending        int
	MaxPendingPerAddr int
}

// Embedded reports whether the hub runs its own PostgreSQL cluster.
func (c Config) Embedded() bool { return c.DatabaseURL == "" }

// option is one environment variable: its default, its help text, and the
// function that parses, validates and stores it. Errors from set never
// repeat the value of a secret.
type option struct {
	name  string
	def   string // used when the variable is unset or empty
	usage string
	set   func(c *Config, v string) error
}

// options is the one table of the hub's configuration; `hub help` and the
// README's table list it.
var options = []option{
	{"DATABASE_URL", "", "PostgreSQL URL; unset: a private cluster in HUB_DATA_DIR", setDatabaseURL},
	{"HUB_ADDR", ":8080", "HTTP listen address", setAddr},
	{"HUB_ADMIN_TOKEN", "", "admin API bearer token, at least 16 characters; required with DATABASE_URL, generated and kept in HUB_DATA_DIR otherwise", setAdminToken},
	{"HUB_TLS_CERT", "", "TLS certificate file (PEM); with HUB_TLS_KEY serves https/wss", func(c *Config, v string) error { c.TLSCert = v; return nil }},
	{"HUB_TLS_KEY", "", "TLS private key file (PEM)", func(c *Config, v string) error { c.TLSKey = v; return nil }},
	{"HUB_AUTH_TIMEOUT", "30s", "time a WebSocket has to authenticate", durationVar(func(c *Config) *time.Duration { return &c.AuthTimeout })},
	{"HUB_HEARTBEAT_INTERVAL", "60s", "protocol A heartbeat interval", durationVar(func(c *Config) *time.Duration { return &c.HeartbeatInterval })},
	{"HUB_EOSPARK_HEARTBEAT", "10s", "protocol B heartbeat interval", durationVar(func(c *Config) *time.Duration { return &c.EOSparkHeartbeat })},
	{"HUB_SEND_BUFFER", "1024", "messages buffered per session", intVar(func(c *Config) *int { return &c.SendBuffer }, 1, 1<<20)},
	{"HUB_SNAPSHOT_MAX_ROWS", "100000", "rows a snapshot subscription may hold; more are refused", intVar(func(c *Config) *int { return &c.SnapshotMaxRows }, 1, 100_000_000)},
	{"HUB_MAX_MESSAGE_BYTES", "65536", "largest inbound WebSocket frame", intVar(func(c *Config) *int { return &c.MaxMessageBytes }, 1024, 64<<20)},
	{"HUB_MAX_LAG", "30s", "how long an event may wait for a session before it is a slow consumer", durationVar(func(c *Config) *time.Duration { return &c.MaxLag })},
	{"HUB_WRITE_TIMEOUT", "10s", "a socket write blocked this long drops the connection", durationVar(func(c *Config) *time.Duration { return &c.WriteTimeout })},
	{"HUB_EVENT_RETENTION", "24h", "how long events stay in the log", durationVar(func(c *Config) *time.Duration { return &c.EventRetention })},
	{"HUB_NODE_ID", "", "this node's name; default <hostname>-<pid>", setNodeID},
	{"HUB_DATA_DIR", "./.hub", "embedded mode: the private cluster and the admin token", setDataDir},
	{"HUB_DEMO", "", "run the demo data simulator; default on without DATABASE_URL, off with it", setDemo},
	{"HUB_PPROF_ADDR", "", "serve Go's pprof on this address (e.g. 127.0.0.1:6060); unset: off", setPprofAddr},
	{"HUB_MAX_PENDING", "1024", "connections not yet authenticated, per node; more are refused (503 or 1013)", intVar(func(c *Config) *int { return &c.MaxPending }, 1, 1<<20)},
	{"HUB_MAX_PENDING_PER_ADDR", "64", "connections not yet authenticated, per remote IP address or IPv6 /64 (the TCP peer: a proxy's address behind a proxy)", intVar(func(c *Config) *int { return &c.MaxPendingPerAddr }, 1, 1<<20)},
}

// migrateVars are the variables `hub migrate` uses: the database, or the
// embedded cluster's directory, and the node name of its log lines. It
// reads no other, so a setting that only serving uses (the admin token,
// the listen address, TLS, the tuning) can neither stop nor change a
// migration.
var migrateVars = []string{"DATABASE_URL", "HUB_DATA_DIR", "HUB_NODE_ID"}

// loadConfig reads every option through getenv and reports every bad one
// at once, each error naming its variable.
func loadConfig(getenv func(string) string) (Config, error) {
	c, err := loadOptions(getenv, func(string) bool { return true })
	if !c.demoSet {
		c.Demo = c.Embedded()
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		err = errors.Join(err, errors.New("HUB_TLS_CERT, HUB_TLS_KEY: set both or neither"))
	}
	// A session may be behind by up to HUB_MAX_LAG before it is closed; a
	// log kept for less would trim events such a session has not read.
	if c.EventRetention > 0 && c.MaxLag > 0 && c.EventRetention < c.MaxLag {
		err = errors.Join(err, fmt.Errorf("HUB_EVENT_RETENTION, HUB_MAX_LAG: the retention (%s) must be at least the lag (%s)", c.EventRetention, c.MaxLag))
	}
	return c, err
}

// loadMigrateConfig reads only migrateVars; the other fields stay zero.
func loadMigrateConfig(getenv func(string) string) (Config, error) {
	return loadOptions(getenv, func(name string) bool { return slices.Contains(migrateVars, name) })
}

// loadOptions reads the options that use selects and reports every bad
// one at once, each error naming its variable.
func loadOptions(getenv func(string) string, use func(name string) bool) (Config, error) {
	var c Config
	var errs []error
	for _, o := range options {
		if !use(o.name) {
			continue
		}
		v := getenv(o.name)
		if v == "" {
			v = o.def
		}
		if err := o.set(&c, v); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", o.name, err))
		}
	}
	c.DataDirExplicit = getenv("HUB_DATA_DIR") != ""
	return c, errors.Join(errs...)
}

// checkServe adds what serving needs beyond loadConfig.
func (c Config) checkServe() error {
	if !c.Embedded() && c.AdminToken == "" {
		return errors.New("HUB_ADMIN_TOKEN: required when DATABASE_URL is set")
	}
	return nil
}

func setDatabaseURL(c *Config, v string) error {
	if v == "" {
		return nil
	}
	// pgx masks passwords in its parse errors only on a best-effort basis
	// (and url.Parse not at all), so the cause is not repeated.
	if _, err := pgxpool.ParseConfig(v); err != nil {
		return errors.New("not a valid PostgreSQL connection string")
	}
	c.DatabaseURL = v
	return nil
}

func setAddr(c *Config, v string) error {
	if _, port, err := net.SplitHostPort(v); err != nil || port == "" {
		return fmt.Errorf("%q is not host:port (e.g. :8080)", v)
	}
	c.Addr = v
	return nil
}

func setPprofAddr(c *Config, v string) error {
	if v == "" {
		return nil
	}
	if _, port, err := net.SplitHostPort(v); err != nil || port == "" {
		return fmt.Errorf("%q is not host:port (e.g. 127.0.0.1:6060)", v)
	}
	c.PprofAddr = v
	return nil
}

func setAdminToken(c *Config, v string) error {
	if v != "" && len(v) < 16 {
		return errors.New("must be at least 16 characters")
	}
	c.AdminToken = v
	return nil
}

func setNodeID(c *Config, v string) error {
	if v == "" {
		host, err := os.Hostname()
		if err != nil || host == "" {
			host = "hub"
		}
		v = fmt.Sprintf("%s-%d", host, os.Getpid())
	}
	if len(v) > 128 || strings.ContainsFunc(v, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return errors.New("must be at most 128 printable characters")
	}
	c.NodeID = v
	return nil
}

func setDataDir(c *Config, v string) error {
	if strings.ContainsRune(v, 0) {
		return errors.New("not a path")
	}
	c.DataDir = v
	return nil
}

func setDemo(c *Config, v string) error {
	if v == "" {
		return nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return fmt.Errorf("%q is not a boolean (true or false)", v)
	}
	c.Demo, c.demoSet = b, true
	return nil
}

func durationVar(field func(*Config) *time.Duration) func(*Config, string) error {
	return func(c *Config, v string) error {
		d, err := time.ParseDuration(v)
		if err != nil {
			return fmt.Errorf("%q is not a duration (e.g. 30s, 5m)", v)
		}
		if d <= 0 {
			return errors.New("must be positive")
		}
		*field(c) = d
		return nil
	}
}

func intVar(field func(*Config) *int, least, most int) func(*Config, string) error {
	return func(c *Config, v string) error {
		n, err := strconv.Atoi(v)
		if err != nil {
			return fmt.Errorf("%q is not an integer", v)
		}
		if n < least {
			return fmt.Errorf("must be at least %d", least)
		}
		if n > most {
			return fmt.Errorf("must be at most %d", most)
		}
		*field(c) = n
		return nil
	}
}
