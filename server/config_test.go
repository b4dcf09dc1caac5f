package main

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func envOf(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestLoadConfigDefaults(t *testing.T) {
	t.Parallel()
	c, err := loadConfig(envOf(nil))
	require.NoError(t, err)
	host, err := os.Hostname()
	require.NoError(t, err)
	require.Equal(t, Config{
		Addr:              ":8080",
		AuthTimeout:       30 * time.Second,
		HeartbeatInterval: 60 * time.Second,
		EOSparkHeartbeat:  10 * time.Second,
		SendBuffer:        1024,
		SnapshotMaxRows:   100000,
		MaxMessageBytes:   65536,
		MaxLag:            30 * time.Second,
		WriteTimeout:      10 * time.Second,
		EventRetention:    24 * time.Hour,
		NodeID:            fmt.Sprintf("%s-%d", host, os.Getpid()),
		DataDir:           "./.hub",
		Demo:              true,
		MaxPending:        1024,
		MaxPendingPerAddr: 64,
	}, c)
	require.True(t, c.Embedded())
	require.NoError(t, c.checkServe())
}

func TestLoadConfig(t *testing.T) {
	t.Parallel()
	const dbURL = "postgres://hub:s3cret-pw@db.example:5432/hub?sslmode=require"
	tests := []struct {
		name  string
		env   map[string]string
		check func(t *testing.T, c Config)
	}{
		{"durations", map[string]string{
			"HUB_AUTH_TIMEOUT": "5s", "HUB_HEARTBEAT_INTERVAL": "1m", "HUB_EOSPARK_HEARTBEAT": "2s",
			"HUB_MAX_LAG": "1m30s", "HUB_WRITE_TIMEOUT": "500ms", "HUB_EVENT_RETENTION": "168h",
		}, func(t *testing.T, c Config) {
			require.Equal(t, 5*time.Second, c.AuthTimeout)
			require.Equal(t, time.Minute, c.HeartbeatInterval)
			require.Equal(t, 2*time.Second, c.EOSparkHeartbeat)
			require.Equal(t, 90*time.Second, c.MaxLag)
			require.Equal(t, 500*time.Millisecond, c.WriteTimeout)
			require.Equal(t, 168*time.Hour, c.EventRetention)
		}},
		{"sizes", map[string]string{"HUB_SEND_BUFFER": "1", "HUB_MAX_MESSAGE_BYTES": "1024"}, func(t *testing.T, c Config) {
			require.Equal(t, 1, c.SendBuffer)
			require.Equal(t, 1024, c.MaxMessageBytes)
		}},
		{"pending caps", map[string]string{"HUB_MAX_PENDING": "10", "HUB_MAX_PENDING_PER_ADDR": "1"}, func(t *testing.T, c Config) {
			require.Equal(t, 10, c.MaxPending)
			require.Equal(t, 1, c.MaxPendingPerAddr)
		}},
		{"external database", map[string]string{"DATABASE_URL": dbURL, "HUB_ADMIN_TOKEN": "0123456789abcdef"}, func(t *testing.T, c Config) {
			require.Equal(t, dbURL, c.DatabaseURL)
			require.False(t, c.Embedded())
			require.False(t, c.Demo, "HUB_DEMO is off by default with DATABASE_URL")
			require.NoError(t, c.checkServe())
		}},
		{"demo forced on", map[string]string{"DATABASE_URL": dbURL, "HUB_DEMO": "true"}, func(t *testing.T, c Config) {
			require.True(t, c.Demo)
		}},
		{"demo off", map[string]string{"HUB_DEMO": "0"}, func(t *testing.T, c Config) {
			require.False(t, c.Demo)
		}},
		{"addr, node, data dir, tls", map[string]string{
			"HUB_ADDR": "127.0.0.1:0", "HUB_NODE_ID": "node-a", "HUB_DATA_DIR": "/srv/hub",
			"HUB_TLS_CERT": "cert.pem", "HUB_TLS_KEY": "key.pem",
		}, func(t *testing.T, c Config) {
			require.Equal(t, "127.0.0.1:0", c.Addr)
			require.Equal(t, "node-a", c.NodeID)
			require.Equal(t, "/srv/hub", c.DataDir)
			require.True(t, c.DataDirExplicit)
			require.Equal(t, "cert.pem", c.TLSCert)
			require.Equal(t, "key.pem", c.TLSKey)
		}},
		{"serving needs an admin token with DATABASE_URL", map[string]string{"DATABASE_URL": dbURL}, func(t *testing.T, c Config) {
			require.EqualError(t, c.checkServe(), "HUB_ADMIN_TOKEN: required when DATABASE_URL is set")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := loadConfig(envOf(tt.env))
			require.NoError(t, err)
			tt.check(t, c)
		})
	}
}

func TestLoadConfigErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, key, value, want string
	}{
		{"send buffer zero", "HUB_SEND_BUFFER", "0", "HUB_SEND_BUFFER: must be at least 1"},
		{"pprof address", "HUB_PPROF_ADDR", "6060", `HUB_PPROF_ADDR: "6060" is not host:port (e.g. 127.0.0.1:6060)`},
		{"send buffer word", "HUB_SEND_BUFFER", "many", `HUB_SEND_BUFFER: "many" is not an integer`},
		{"send buffer huge", "HUB_SEND_BUFFER", "99999999999999999999", `HUB_SEND_BUFFER: "99999999999999999999" is not an integer`},
		{"message bytes small", "HUB_MAX_MESSAGE_BYTES", "100", "HUB_MAX_MESSAGE_BYTES: must be at least 1024"},
		{"message bytes large", "HUB_MAX_MESSAGE_BYTES", "1000000000", "HUB_MAX_MESSAGE_BYTES: must be at most 67108864"},
		{"pending zero", "HUB_MAX_PENDING", "0", "HUB_MAX_PENDING: must be at least 1"},
		{"pending per address word", "HUB_MAX_PENDING_PER_ADDR", "all", `HUB_MAX_PENDING_PER_ADDR: "all" is not an integer`},
		{"duration without unit", "HUB_MAX_LAG", "30", `HUB_MAX_LAG: "30" is not a duration (e.g. 30s, 5m)`},
		{"duration zero", "HUB_AUTH_TIMEOUT", "0s", "HUB_AUTH_TIMEOUT: must be positive"},
		{"duration negative", "HUB_EVENT_RETENTION", "-1h", "HUB_EVENT_RETENTION: must be positive"},
		{"heartbeat", "HUB_HEARTBEAT_INTERVAL", "often", `HUB_HEARTBEAT_INTERVAL: "often" is not a duration (e.g. 30s, 5m)`},
		{"eospark heartbeat", "HUB_EOSPARK_HEARTBEAT", "0", "HUB_EOSPARK_HEARTBEAT: must be positive"},
		{"write timeout", "HUB_WRITE_TIMEOUT", "1x", `HUB_WRITE_TIMEOUT: "1x" is not a duration (e.g. 30s, 5m)`},
		{"addr without port", "HUB_ADDR", "localhost", `HUB_ADDR: "localhost" is not host:port (e.g. :8080)`},
		{"short admin token", "HUB_ADMIN_TOKEN", "secret", "HUB_ADMIN_TOKEN: must be at least 16 characters"},
		{"demo", "HUB_DEMO", "maybe", `HUB_DEMO: "maybe" is not a boolean (true or false)`},
		{"node id", "HUB_NODE_ID", "a\nb", "HUB_NODE_ID: must be at most 128 printable characters"},
		{"tls cert alone", "HUB_TLS_CERT", "cert.pem", "HUB_TLS_CERT, HUB_TLS_KEY: set both or neither"},
		{"tls key alone", "HUB_TLS_KEY", "key.pem", "HUB_TLS_CERT, HUB_TLS_KEY: set both or neither"},
		{"retention below lag", "HUB_EVENT_RETENTION", "10s", "HUB_EVENT_RETENTION, HUB_MAX_LAG: the retention (10s) must be at least the lag (30s)"},
		{"lag above retention", "HUB_MAX_LAG", "25h", "HUB_EVENT_RETENTION, HUB_MAX_LAG: the retention (24h0m0s) must be at least the lag (25h0m0s)"},
		{"database url", "DATABASE_URL", "postgres://hub:s3cret-pw@db:notaport/hub", "DATABASE_URL: not a valid PostgreSQL connection string"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := loadConfig(envOf(map[string]string{tt.key: tt.value}))
			require.EqualError(t, err, tt.want)
			require.NotContains(t, err.Error(), "s3cret", "errors never repeat a password")
		})
	}
}

func TestLoadConfigReportsEveryError(t *testing.T) {
	t.Parallel()
	_, err := loadConfig(envOf(map[string]string{"HUB_SEND_BUFFER": "0", "HUB_MAX_LAG": "x"}))
	require.EqualError(t, err, "HUB_SEND_BUFFER: must be at least 1\nHUB_MAX_LAG: \"x\" is not a duration (e.g. 30s, 5m)")
}

func TestLoadMigrateConfig(t *testing.T) {
	t.Parallel()
	for _, name := range migrateVars {
		require.True(t, slices.ContainsFunc(options, func(o option) bool { return o.name == name }), "%s is in the options table", name)
	}
	const dbURL = "postgres://hub@db.example/hub"
	c, err := loadMigrateConfig(envOf(map[string]string{
		"DATABASE_URL": dbURL, "HUB_DATA_DIR": "/srv/hub", "HUB_NODE_ID": "node-m",
		"HUB_ADMIN_TOKEN": "short", "HUB_ADDR": "127.0.0.1:9", "HUB_SEND_BUFFER": "0",
	}))
	require.NoError(t, err)
	require.Equal(t, Config{DatabaseURL: dbURL, DataDir: "/srv/hub", DataDirExplicit: true, NodeID: "node-m"}, c)
}

// The help text and the README list every variable of the table.
func TestEveryOptionDocumented(t *testing.T) {
	t.Parallel()
	var help strings.Builder
	require.NoError(t, usage(&help))
	readme, err := os.ReadFile("../README.md")
	require.NoError(t, err)
	for _, o := range options {
		require.Contains(t, help.String(), o.name)
		require.Contains(t, string(readme), "`"+o.name+"`", "README.md's configuration table")
	}
}

func FuzzLoadConfig(f *testing.F) {
	f.Add("HUB_SEND_BUFFER", "12")
	f.Add("HUB_MAX_LAG", "1h")
	f.Add("HUB_ADDR", "[::1]:80")
	f.Add("DATABASE_URL", "postgres://a:b@c/d")
	f.Add("HUB_MAX_PENDING", "0")
	f.Add("HUB_MAX_PENDING_PER_ADDR", "1048577")
	f.Fuzz(func(t *testing.T, key, value string) {
		c, err := loadConfig(envOf(map[string]string{key: value}))
		if err != nil {
			require.True(t, strings.HasPrefix(err.Error(), key+":") || strings.HasPrefix(err.Error(), "HUB_TLS_CERT, HUB_TLS_KEY:") ||
				strings.HasPrefix(err.Error(), "HUB_EVENT_RETENTION, HUB_MAX_LAG:"),
				"error %q does not name %s", err, key)
			return
		}
		require.Positive(t, c.SendBuffer)
		require.Positive(t, c.MaxLag)
		require.NotEmpty(t, c.Addr)
		require.NotEmpty(t, c.NodeID)
		require.Positive(t, c.MaxPending)
		require.Positive(t, c.MaxPendingPerAddr)
	})
}
