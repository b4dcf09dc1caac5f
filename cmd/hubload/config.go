package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/hubdev/hub/cmd/internal/centrifugo"
)

// config holds the command line; every field states its default, which
// the workload preset may change.
type config struct {
	// Workload names the preset: w1, w1sat, w2 or w3 (default w1).
	Workload string
	// Clients is the number of WebSocket clients (w1: 1000, w2: 5000, w3: 5000).
	Clients int
	// Tenants splits the clients over this many hub clients on the tenant
	// channel orders; 0 puts them all on the global channel scores
	// (w2: 100, otherwise 0).
	Tenants int
	// Rate is the UPDATEs per second across all writers (w1: 100, w1sat and
	// w2: 1000); 0 writes nothing and holds the connections idle (w3).
	Rate int
	// Duration is the write phase, or the idle hold with Rate 0 (w1, w2:
	// 30s; w1sat: 15s; w3: 10s).
	Duration time.Duration
	// Writers is the number of writer connections (default 8).
	Writers int
	// Rows is how many rows are updated at random (default 1000; w2: 10000,
	// spread evenly over the tenants).
	Rows int
	// Runs repeats the workload (default 1); with two servers it is the
	// number of pairs, each server running once per pair.
	Runs int
	// Drain bounds the wait for the last deliveries after the write phase
	// (default 30s); the drain also ends after Quiet without a delivery.
	Drain time.Duration
	// Quiet ends the drain when no delivery arrived for this long (default 2s).
	Quiet time.Duration
	// Settle is the wait between the last subscribe and the RSS reading
	// (default 2s).
	Settle time.Duration
	// SourceAddrs spreads the connections over 127.0.0.2 .. 127.0.0.(1+n)
	// (default 16), against ephemeral-port exhaustion.
	SourceAddrs int
	// ConnsPerKey is how many clients share one API key (default 10000, the
	// admin API's largest maxConnections).
	ConnsPerKey int
	// DialConcurrency bounds the connections being opened at once (default 64).
	DialConcurrency int
	// Servers are the systems measured, "hub" and "centrifugo" (default
	// both; the hub alone with URL). With both, the runs alternate in
	// pairs C H, H C, C H, …, so that drift of the machine touches both.
	Servers []string
	// Scan reads the frames with the byte scanner of frame.go instead of a
	// full JSON decode (-decode scan; default -decode json).
	Scan bool
	// CentrifugoBin is a Centrifugo binary to use instead of building
	// centrifugo.Version into the user's cache directory (default "").
	CentrifugoBin string
	// CentrifugoPartitions is the number of outbox partitions (default 1).
	CentrifugoPartitions int

	// URL is a running hub (e.g. http://127.0.0.1:8080); "" (the default)
	// builds and starts one on a private cluster.
	URL string
	// AdminToken is the running hub's admin token (required with URL).
	AdminToken string
	// DatabaseURL is the running hub's database (required with URL).
	DatabaseURL string
	// ServerPID is the running hub's process id, for CPU and RSS (0: not
	// measured). Ignored when hubload starts the hub.
	ServerPID int
	// HubEnv are extra NAME=value settings for the hub hubload starts,
	// comma-separated (e.g. HUB_SEND_BUFFER=4096).
	HubEnv []string
}

// presets are the workloads of the issue.
var presets = map[string]config{
	"w1":    {Clients: 1000, Rate: 100, Duration: 30 * time.Second, Rows: 1000},
	"w1sat": {Clients: 1000, Rate: 1000, Duration: 15 * time.Second, Rows: 1000},
	"w2":    {Clients: 5000, Tenants: 100, Rate: 1000, Duration: 30 * time.Second, Rows: 10000},
	"w3":    {Clients: 5000, Rate: 0, Duration: 10 * time.Second, Rows: 1000},
	// snapshot: every client subscribes with a snapshot of its tenant's
	// 1,000 rows at once (issue 15); the hub alone.
	"snapshot": {Clients: 1000, Tenants: 100, Rate: 0, Duration: time.Second, Rows: 100_000},
}

func parseConfig(args []string, stderr io.Writer) (config, error) {
	var c config
	var hubEnv, servers, decode string
	fs := flag.NewFlagSet("hubload", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.Workload, "workload", "w1", "preset: w1 (1000 clients, scores, 100/s), w1sat (1000/s), w2 (5000 clients, 100 tenants, orders, 1000/s), w3 (5000 idle), snapshot (1000 clients subscribe with a snapshot of 1000 rows each at once)")
	fs.IntVar(&c.Clients, "clients", 0, "WebSocket clients (default: the preset's)")
	fs.IntVar(&c.Tenants, "tenants", 0, "tenants on orders; 0: global channel scores (default: the preset's)")
	fs.IntVar(&c.Rate, "rate", 0, "UPDATEs per second; 0 with -workload w3: idle (default: the preset's)")
	fs.DurationVar(&c.Duration, "duration", 0, "write phase, or idle hold (default: the preset's)")
	fs.IntVar(&c.Writers, "writers", 8, "writer connections")
	fs.IntVar(&c.Rows, "rows", 0, "rows updated at random (default: the preset's)")
	fs.IntVar(&c.Runs, "runs", 1, "repetitions; with two servers, pairs")
	fs.DurationVar(&c.Drain, "drain", 30*time.Second, "longest wait for the last deliveries after the write phase")
	fs.DurationVar(&c.Quiet, "quiet", 2*time.Second, "the drain ends after this long without a delivery")
	fs.DurationVar(&c.Settle, "settle", 2*time.Second, "wait after the last subscribe before reading the hub's RSS")
	fs.IntVar(&c.SourceAddrs, "source-addrs", 16, "spread connections over 127.0.0.2 .. 127.0.0.(1+n)")
	fs.IntVar(&c.ConnsPerKey, "conns-per-key", maxKeyConnections, "clients sharing one API key (1 to 10000)")
	fs.IntVar(&c.DialConcurrency, "dial-concurrency", 64, "connections opened at once")
	fs.StringVar(&c.URL, "url", "", "running hub, e.g. http://127.0.0.1:8080 (default: build and start one on a private cluster)")
	fs.StringVar(&c.AdminToken, "admin-token", "", "the running hub's admin token (with -url)")
	fs.StringVar(&c.DatabaseURL, "database-url", "", "the running hub's database (with -url)")
	fs.IntVar(&c.ServerPID, "server-pid", 0, "the running hub's pid, for CPU and RSS (with -url)")
	fs.StringVar(&hubEnv, "hub-env", "", "extra HUB_NAME=value,... (or GODEBUG=…, GOGC=…) for the hub hubload starts")
	fs.StringVar(&servers, "servers", "hub,centrifugo", "servers measured, in pairs when both (default: hub only with -url)")
	fs.StringVar(&decode, "decode", "json", "how clients read frames: json (every frame decoded into structs) or scan (the fields measured only)")
	fs.StringVar(&c.CentrifugoBin, "centrifugo-bin", "", "Centrifugo binary to run (default: build "+centrifugo.Version+" into the user's cache directory)")
	fs.IntVar(&c.CentrifugoPartitions, "centrifugo-partitions", 1, "partitions of Centrifugo's outbox")
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	if fs.NArg() > 0 {
		return config{}, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	p, ok := presets[c.Workload]
	if !ok {
		return config{}, fmt.Errorf("-workload: unknown %q (w1, w1sat, w2, w3, snapshot)", c.Workload)
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	c.applyPreset(p, set)
	if hubEnv != "" {
		c.HubEnv = strings.Split(hubEnv, ",")
	}
	if (c.URL != "" || c.Workload == "snapshot") && !set["servers"] {
		servers = hubName
	}
	c.Servers = strings.Split(servers, ",")
	c.Scan = decode == "scan"
	err := c.validate()
	if decode != "json" && decode != "scan" {
		err = errors.Join(err, fmt.Errorf("-decode: %q is neither json nor scan", decode))
	}
	return c, err
}

// applyPreset fills the fields whose flags were not given from p.
func (c *config) applyPreset(p config, set map[string]bool) {
	if !set["clients"] {
		c.Clients = p.Clients
	}
	if !set["tenants"] {
		c.Tenants = p.Tenants
	}
	if !set["rate"] {
		c.Rate = p.Rate
	}
	if !set["duration"] {
		c.Duration = p.Duration
	}
	if !set["rows"] {
		c.Rows = p.Rows
	}
}

func (c config) validate() error {
	var errs []error
	check := func(bad bool, msg string) {
		if bad {
			errs = append(errs, errors.New(msg))
		}
	}
	check(c.Clients < 1, "-clients: must be at least 1")
	check(c.Tenants < 0 || c.Tenants > 1000, "-tenants: must be between 0 and 1000")
	check(c.Tenants > c.Clients, "-tenants: at most -clients")
	check(c.Rate < 0, "-rate: must not be negative")
	check(c.Duration < 100*time.Millisecond, "-duration: must be at least 100ms")
	check(c.Writers < 1, "-writers: must be at least 1")
	check(c.Rows < 1 || c.Rows < c.Tenants, "-rows: must be at least 1 and at least -tenants")
	check(c.Runs < 1, "-runs: must be at least 1")
	check(c.Drain <= 0 || c.Quiet <= 0 || c.Settle < 0, "-drain, -quiet: must be positive; -settle: not negative")
	check(c.SourceAddrs < 1 || c.SourceAddrs > 250, "-source-addrs: must be between 1 and 250")
	check(c.ConnsPerKey < 1 || c.ConnsPerKey > maxKeyConnections, "-conns-per-key: must be between 1 and 10000")
	check(c.DialConcurrency < 1, "-dial-concurrency: must be at least 1")
	check(c.CentrifugoPartitions < 1, "-centrifugo-partitions: must be at least 1")
	seen := map[string]bool{}
	for _, s := range c.Servers {
		check(s != hubName && s != centrifugoName, fmt.Sprintf("-servers: unknown %q (hub, centrifugo)", s))
		check(seen[s], fmt.Sprintf("-servers: %q twice", s))
		seen[s] = true
	}
	check(c.URL != "" && seen[centrifugoName], "-servers: centrifugo only on the cluster hubload starts, not with -url")
	check(len(c.HubEnv) > 0 && !seen[hubName], "-hub-env: only when the hub runs")
	if c.URL != "" {
		check(c.AdminToken == "", "-admin-token: required with -url")
		check(c.DatabaseURL == "", "-database-url: required with -url")
		check(len(c.HubEnv) > 0, "-hub-env: only for the hub hubload starts")
	} else {
		check(c.ServerPID != 0, "-server-pid: only with -url")
		check(c.DatabaseURL != "" || c.AdminToken != "", "-database-url, -admin-token: only with -url")
	}
	for _, kv := range c.HubEnv {
		name, _, found := strings.Cut(kv, "=")
		ok := found && (strings.HasPrefix(name, "HUB_") || strings.HasPrefix(name, "GO")) // GOGC, GODEBUG, …
		check(!ok, fmt.Sprintf("-hub-env: %q is not HUB_NAME=value or GONAME=value", kv))
	}
	return errors.Join(errs...)
}

// idle reports whether the run holds connections without writing (w3).
func (c config) idle() bool { return c.Rate == 0 }

// channel is the hub channel the clients subscribe to and the writers
// change.
func (c config) channel() string {
	if c.Tenants > 0 {
		return "orders"
	}
	return "scores"
}

// table is the channel's table.
func (c config) table() string { return "public." + c.channel() }

// tenantOf is client i's tenant, "" on a global channel.
func (c config) tenantOf(i int) string {
	if c.Tenants == 0 {
		return ""
	}
	return tenantName(i % c.Tenants)
}
