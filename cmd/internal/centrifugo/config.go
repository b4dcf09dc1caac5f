package centrifugo

import (
	"cmp"
	"encoding/json"
	"errors"
	"net"
	"time"
)

// Config is what Start writes into Centrifugo's configuration file; the
// rest are Centrifugo's defaults.
type Config struct {
	// Addr is the host:port of the HTTP server: WebSocket, health and
	// metrics (required).
	Addr string
	// Secret is the HMAC key of the connection tokens (required).
	Secret string
	// DSN is the database holding OutboxTable (required).
	DSN string
	// Partitions is the number of outbox partitions, each consumed by its
	// own worker in id order (default 1).
	Partitions int
	// SelectLimit is how many outbox rows a worker reads per transaction
	// (default 100, Centrifugo's).
	SelectLimit int
	// PollInterval is how often a worker reads its partition when no
	// notification came (default 300ms, Centrifugo's).
	PollInterval time.Duration
	// TenantNamespaces are the namespaces of Attach.Channel with a tenant
	// column: their user-limited channels "ns:#user" admit user only.
	TenantNamespaces []string
}

func (c Config) withDefaults() Config {
	c.Partitions = cmp.Or(c.Partitions, 1)
	c.SelectLimit = cmp.Or(c.SelectLimit, 100)
	c.PollInterval = cmp.Or(c.PollInterval, 300*time.Millisecond)
	return c
}

func (c Config) validate() error {
	var errs []error
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		errs = append(errs, errors.New("centrifugo: Addr must be host:port"))
	}
	if len(c.Secret) == 0 {
		errs = append(errs, errors.New("centrifugo: Secret is required"))
	}
	if c.DSN == "" {
		errs = append(errs, errors.New("centrifugo: DSN is required"))
	}
	if c.Partitions < 1 || c.SelectLimit < 1 || c.PollInterval <= 0 {
		errs = append(errs, errors.New("centrifugo: Partitions, SelectLimit and PollInterval must be positive"))
	}
	return errors.Join(errs...)
}

// fileConfig is Centrifugo v5's configuration file, the keys it reads.
type fileConfig struct {
	Address string `json:"address"`
	Port    string `json:"port"`
	Engine  string `json:"engine"`
	Secret  string `json:"token_hmac_secret_key"`
	// Every connection with a valid token may subscribe to the channels
	// outside the tenant namespaces, as every key of the hub may to a
	// global channel.
	SubscribeForClient bool        `json:"allow_subscribe_for_client"`
	Namespaces         []namespace `json:"namespaces"`
	Consumers          []consumer  `json:"consumers"`
	Health             bool        `json:"health"`
	Prometheus         bool        `json:"prometheus"` // for the Go runtime's figures, as the hub's /metrics
	UsageStatsDisable  bool        `json:"usage_stats_disable"`
	LogLevel           string      `json:"log_level"`
}

type namespace struct {
	Name        string `json:"name"`
	UserLimited bool   `json:"allow_user_limited_channels"`
}

type consumer struct {
	Name     string           `json:"name"`
	Type     string           `json:"type"`
	Postgres postgresConsumer `json:"postgresql"`
}

type postgresConsumer struct {
	DSN                 string `json:"dsn"`
	OutboxTable         string `json:"outbox_table_name"`
	Partitions          int    `json:"num_partitions"`
	SelectLimit         int    `json:"partition_select_limit"`
	PollInterval        string `json:"partition_poll_interval"`
	NotificationChannel string `json:"partition_notification_channel"`
}

// File returns the configuration file for c.
func (c Config) File() ([]byte, error) {
	c = c.withDefaults()
	if err := c.validate(); err != nil {
		return nil, err
	}
	host, port, _ := net.SplitHostPort(c.Addr)
	f := fileConfig{
		Address: host, Port: port, Engine: "memory", Secret: c.Secret,
		SubscribeForClient: true,
		Consumers: []consumer{{Name: "outbox", Type: "postgresql", Postgres: postgresConsumer{
			DSN: c.DSN, OutboxTable: OutboxTable, Partitions: c.Partitions, SelectLimit: c.SelectLimit,
			PollInterval: c.PollInterval.String(), NotificationChannel: NotifyChannel,
		}}},
		Health: true, Prometheus: true, UsageStatsDisable: true, LogLevel: "info",
		Namespaces: []namespace{},
	}
	for _, ns := range c.TenantNamespaces {
		f.Namespaces = append(f.Namespaces, namespace{Name: ns, UserLimited: true})
	}
	return json.MarshalIndent(f, "", "  ")
}
