package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/gorilla/websocket"
	"github.com/jackc/pgx/v5"
	"golang.org/x/sync/errgroup"
)

// The snapshot workload (issue 15): rows per tenant in orders, then every
// client connects at once and subscribes with a snapshot (SPEC §10). It
// measures each client's time from the start to snapshot_end, checks that
// each got exactly its tenant's rows, and what the hub and PostgreSQL
// spent. The hub alone: Centrifugo has no snapshot of a table.

// snapshotClient is one client's outcome.
type snapshotClient struct {
	took        time.Duration // start → snapshot_end
	rows        int
	crossTenant int // rows of another client: must stay 0
	err         error
}

// runSnapshotLoad runs the snapshot workload cfg.Runs times on the hub of t.
func runSnapshotLoad(ctx context.Context, cfg config, t *target, stdout, log io.Writer) error {
	var h *hubServer
	for _, s := range t.servers {
		if hs, ok := s.(*hubServer); ok {
			h = hs
		}
	}
	if h == nil || cfg.Tenants == 0 {
		return errors.New("-workload snapshot: needs the hub (-servers hub) and tenants")
	}
	ctl, err := pgx.Connect(ctx, t.databaseURL)
	if err != nil {
		return fmt.Errorf("connect to the database: %w", err)
	}
	defer ctl.Close(context.Background())
	if err := prepareRows(ctx, ctl, cfg); err != nil {
		return err
	}
	perTenant := cfg.Rows / cfg.Tenants
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(stdout, "hubload snapshot: %d clients at once, %d tenants, %d rows each (%d in orders), -decode json\n",
		cfg.Clients, cfg.Tenants, perTenant, cfg.Rows)
	fmt.Fprintln(tw, "run\tok\tfailed\trows/client\twrong rows\tx-tenant\tp50 ms\tp90 ms\tp99 ms\tmax ms\tall s\trows/s\thub cpu s\tpg cpu s\tpg µs/row\t")
	for run := 1; run <= cfg.Runs; run++ {
		fmt.Fprintf(log, "run %d: %d clients subscribe with a snapshot\n", run, cfg.Clients)
		m0 := markCPU(h.pid(), t.pgPID)
		start := time.Now()
		clients := snapshotAll(ctx, cfg, h, start)
		all := time.Since(start)
		m1 := markCPU(h.pid(), t.pgPID)
		if err := ctx.Err(); err != nil {
			return err
		}
		var ok, failed, wrong, cross, rows int
		var took []time.Duration
		for i, c := range clients {
			switch {
			case c.err != nil:
				if failed++; failed == 1 {
					fmt.Fprintf(log, "client %d: %v\n", i, c.err)
				}
				continue
			case c.rows != perTenant:
				wrong++
			}
			ok++
			rows += c.rows
			cross += c.crossTenant
			took = append(took, c.took)
		}
		slices.Sort(took)
		pct := func(p float64) float64 {
			if len(took) == 0 {
				return 0
			}
			return float64(took[min(len(took)-1, int(p*float64(len(took))))].Microseconds()) / 1000
		}
		pg := (m1.pg - m0.pg).Seconds()
		fmt.Fprintf(tw, "%d\t%d\t%d\t%d\t%d\t%d\t%.1f\t%.1f\t%.1f\t%.1f\t%.2f\t%.0f\t%.2f\t%.2f\t%.2f\t\n",
			run, ok, failed, perTenant, wrong, cross, pct(0.5), pct(0.9), pct(0.99), pct(1),
			all.Seconds(), float64(rows)/all.Seconds(), (m1.server - m0.server).Seconds(), pg, pg*1e6/float64(max(rows, 1)))
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	return nil
}

// snapshotAll connects every client at once, spread over the source
// addresses as the fleet is, and waits for each one's snapshot_end.
func snapshotAll(ctx context.Context, cfg config, h *hubServer, start time.Time) []snapshotClient {
	dialers := make([]*websocket.Dialer, cfg.SourceAddrs)
	for i := range dialers {
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(2+i))}, Timeout: 30 * time.Second}
		dialers[i] = &websocket.Dialer{NetDialContext: d.DialContext, HandshakeTimeout: 30 * time.Second}
	}
	out := make([]snapshotClient, cfg.Clients)
	var g errgroup.Group
	for i := range cfg.Clients {
		g.Go(func() error {
			out[i] = snapshotOne(ctx, dialers[i%len(dialers)], h, i, cfg.tenantOf(i), start)
			return nil
		})
	}
	_ = g.Wait()
	return out
}

// snapshotOne subscribes client i with a snapshot of orders and reads,
// decoding every frame, until snapshot_end.
func snapshotOne(ctx context.Context, d *websocket.Dialer, h *hubServer, i int, tenant string, start time.Time) snapshotClient {
	var c snapshotClient
	conn, err := dialAndHandshake(ctx, d, h.url, "/ws/subscribe", func(conn *websocket.Conn) error {
		req, _ := json.Marshal(map[string]any{"type": "subscribe", "apiKey": h.keys[i], "channels": []string{"orders"}, "snapshot": true})
		return conn.WriteMessage(websocket.TextMessage, req)
	})
	if err != nil {
		c.err = err
		return c
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	_ = conn.SetReadDeadline(time.Now().Add(2 * time.Minute))
	for {
		_, data, err := conn.ReadMessage()
		if err != nil {
			c.err = fmt.Errorf("before snapshot_end: %w", err)
			return c
		}
		var f struct {
			Type    string
			Message string
			Payload struct {
				Client string
			}
		}
		if err := json.Unmarshal(data, &f); err != nil {
			c.err = fmt.Errorf("undecodable frame: %w", err)
			return c
		}
		switch f.Type {
		case "snapshot":
			c.rows++
			if f.Payload.Client != tenant {
				c.crossTenant++
			}
		case "snapshot_end":
			c.took = time.Since(start)
			return c
		case "error":
			c.err = fmt.Errorf("refused: %s", f.Message)
			return c
		}
	}
}
