package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/gorilla/websocket"
	"github.com/jackc/pgx/v5"

	"github.com/hubdev/hub/cmd/internal/centrifugo"
)

// cfNamespace holds the tenants' channels "orders:#<tenant>".
const cfNamespace = "orders"

// cfServer is the Centrifugo hubload builds and starts on the hub's
// database, fed by its own trigger through the outbox.
type cfServer struct {
	srv      *centrifugo.Server
	bin, dir string
	cfg      centrifugo.Config
	tokens   []string // client i's connection token
	channels []string // client i's channel
}

// startCentrifugo installs the outbox and the (disabled) trigger on the
// workload's table, builds Centrifugo unless -centrifugo-bin names it, and
// starts it in dir.
func startCentrifugo(ctx context.Context, cfg config, dir, databaseURL string, ctl *pgx.Conn, log io.Writer) (*cfServer, error) {
	if err := attachOutbox(ctx, ctl, cfg); err != nil {
		return nil, err
	}
	bin := cfg.CentrifugoBin
	if bin == "" {
		cache, err := os.UserCacheDir()
		if err != nil {
			return nil, fmt.Errorf("no cache directory for Centrifugo's binary: %w", err)
		}
		if bin, err = centrifugo.Build(ctx, filepath.Join(cache, "hubload"), log); err != nil {
			return nil, err
		}
	}
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	c := &cfServer{bin: bin, dir: dir, cfg: centrifugo.Config{Addr: addr, Secret: rand.Text(), DSN: databaseURL,
		Partitions: cfg.CentrifugoPartitions, TenantNamespaces: []string{cfNamespace}}}
	exp := time.Now().Add(24 * time.Hour)
	for i := range cfg.Clients {
		user, channel := globalClient, cfg.channel()
		if t := cfg.tenantOf(i); t != "" {
			user, channel = t, centrifugo.TenantChannel(cfNamespace, t)
		}
		c.tokens = append(c.tokens, centrifugo.Token(c.cfg.Secret, user, exp))
		c.channels = append(c.channels, channel)
	}
	if err := c.start(ctx, log); err != nil {
		return nil, err
	}
	return c, nil
}

// attachOutbox creates the outbox and the trigger, as hub.attach would for
// the same table (migrations/0001_hub.up.sql), disabled until a run of
// Centrifugo enables it.
func attachOutbox(ctx context.Context, ctl *pgx.Conn, cfg config) error {
	a := centrifugo.Attach{Table: "public.scores", Channel: "scores", Ops: []string{"UPDATE"}, Partitions: cfg.CentrifugoPartitions}
	if cfg.Tenants > 0 {
		a = centrifugo.Attach{Table: "public.orders", Channel: cfNamespace, TenantColumn: "client",
			Ops: []string{"INSERT", "UPDATE"}, Partitions: cfg.CentrifugoPartitions}
	}
	sql := centrifugo.SchemaSQL + ";\n" + centrifugo.AttachSQL(a) + ";\n" +
		fmt.Sprintf("ALTER TABLE %s DISABLE TRIGGER %s", a.Table, centrifugo.TriggerName)
	if _, err := ctl.Exec(ctx, sql); err != nil {
		return fmt.Errorf("create Centrifugo's outbox and trigger: %w", err)
	}
	return nil
}

func (c *cfServer) start(ctx context.Context, log io.Writer) error {
	srv, err := centrifugo.Start(ctx, c.bin, c.dir, c.cfg)
	if err != nil {
		return err
	}
	c.srv = srv
	fmt.Fprintf(log, "Centrifugo %s pid %d on %s, log %s\n", centrifugo.Version, srv.PID, srv.URL, srv.LogPath)
	return nil
}

func (c *cfServer) restart(ctx context.Context) error {
	c.srv.Stop()
	c.srv = nil
	return c.start(ctx, io.Discard)
}

func (c *cfServer) close(log io.Writer) {
	if c.srv != nil {
		c.srv.Stop()
		reportLog(c.srv.LogPath, "centrifugo: ", []string{`"level":"warn"`, `"level":"error"`, `"level":"fatal"`}, log)
	}
}

func (c *cfServer) name() string { return centrifugoName }
func (c *cfServer) pid() int {
	if c.srv == nil {
		return 0 // a restart failed
	}
	return c.srv.PID
}
func (c *cfServer) baseURL() string { return c.srv.URL }
func (c *cfServer) trigger() string { return centrifugo.TriggerName }

// subscribe connects client i with its token and subscribes it to its
// channel (Centrifugo's client protocol v2, JSON), waiting for both
// replies.
func (c *cfServer) subscribe(ctx context.Context, d *websocket.Dialer, i int) (*websocket.Conn, error) {
	return dialAndHandshake(ctx, d, c.srv.URL, "/connection/websocket", func(conn *websocket.Conn) error {
		return c.handshake(conn, i)
	})
}

// cfCommand is a command of Centrifugo's client protocol: connect or
// subscribe.
type cfCommand struct {
	ID        uint32 `json:"id"`
	Connect   any    `json:"connect,omitempty"`
	Subscribe any    `json:"subscribe,omitempty"`
}

// handshake sends connect then subscribe and reads until both are
// answered. Nothing is published before the run writes, so the messages
// read here carry no publication of the run.
func (c *cfServer) handshake(conn *websocket.Conn, i int) error {
	connect, _ := json.Marshal(cfCommand{ID: 1, Connect: map[string]string{"token": c.tokens[i], "name": "hubload"}})
	subscribe, _ := json.Marshal(cfCommand{ID: 2, Subscribe: map[string]string{"channel": c.channels[i]}})
	for id, cmd := range [][]byte{connect, subscribe} {
		if err := conn.WriteMessage(websocket.TextMessage, cmd); err != nil {
			return fmt.Errorf("send command %d: %w", id+1, err)
		}
		if err := awaitReply(conn, uint32(id+1)); err != nil {
			return err
		}
	}
	return nil
}

// awaitReply reads messages until the reply to command id.
func awaitReply(conn *websocket.Conn, id uint32) error {
	for {
		_, msg, err := conn.ReadMessage()
		if err != nil {
			return err
		}
		for line := range bytes.SplitSeq(msg, []byte("\n")) {
			var r struct {
				ID    uint32   `json:"id"`
				Error *cfError `json:"error"`
			}
			if json.Unmarshal(line, &r) != nil || r.ID != id {
				continue
			}
			if r.Error != nil {
				return fmt.Errorf("command %d refused: %d %s", id, r.Error.Code, r.Error.Message)
			}
			return nil
		}
	}
}

func (c *cfServer) decoder(channel string, scan bool) decodeFunc {
	switch {
	case channel == "orders" && scan:
		return cfScan(pgOrderKeys)
	case channel == "orders":
		return cfJSON[orderRowPG]()
	case scan:
		return cfScan(pgScoreKeys)
	default:
		return cfJSON[scoreRowPG]()
	}
}

// outboxLedger takes the writers' count of committed UPDATEs: Centrifugo
// keeps no log (its consumer deletes the outbox rows it has published),
// and each committed UPDATE inserted exactly one outbox row in its own
// transaction.
type outboxLedger struct{ ctl *pgx.Conn }

// openLedger deletes what a previous run left in the outbox (counted as
// that run's outboxLeft), so that it does not reach this run's clients.
func (c *cfServer) openLedger(ctx context.Context, ctl *pgx.Conn) (ledger, error) {
	if _, err := ctl.Exec(ctx, "DELETE FROM "+centrifugo.OutboxTable); err != nil {
		return nil, fmt.Errorf("empty the outbox: %w", err)
	}
	return &outboxLedger{ctl: ctl}, nil
}

func (l *outboxLedger) committed(_ context.Context, wr writeResult) (map[string]uint64, error) {
	return wr.ByTenant, nil
}

// settle records the outbox rows the consumer had not published yet.
func (l *outboxLedger) settle(ctx context.Context, res *result) error {
	var n int64
	if err := l.ctl.QueryRow(ctx, "SELECT count(*) FROM "+centrifugo.OutboxTable).Scan(&n); err != nil {
		return fmt.Errorf("count the outbox: %w", err)
	}
	res.OutboxLeft = &n
	return nil
}
