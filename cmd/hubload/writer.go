package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/sync/errgroup"
)

// The UPDATEs stamp the row with the writer's clock read just before it
// sends the statement ($2), which the clients subtract from their receive
// time: the same start for every server, whatever the trigger does. The
// counter each one increments lets the clients check every row's order.
const (
	updateScore = `UPDATE public.scores SET updated_at = $2, current_minute = current_minute + 1
		WHERE fixture_id = 'hubload-' || $1::int`
	updateOrder = `UPDATE public.orders SET matched_at = $2, matched_stake = matched_stake + 1
		WHERE order_id = $1::bigint`
)

// writers are the run's writer connections.
type writers struct {
	conns []*pgx.Conn
	sql   string
	base  int64 // the first row's key: 0 for scores fixtures, orderIDBase for orders
	rows  int
	// tenants is the number of tenants; row i belongs to tenant i % tenants
	// (prepareRows). 0 on a global channel.
	tenants int
}

func openWriters(ctx context.Context, databaseURL string, cfg config) (*writers, error) {
	w := &writers{sql: updateScore, rows: cfg.Rows, tenants: cfg.Tenants}
	if cfg.Tenants > 0 {
		w.sql, w.base = updateOrder, orderIDBase
	}
	for range cfg.Writers {
		c, err := pgx.Connect(ctx, databaseURL)
		if err != nil {
			w.close()
			return nil, fmt.Errorf("writer connection: %w", err)
		}
		w.conns = append(w.conns, c)
	}
	return w, nil
}

func (w *writers) close() {
	for _, c := range w.conns {
		_ = c.Close(context.Background())
	}
}

// writeResult is one write phase.
type writeResult struct {
	Committed uint64
	// ByTenant counts the committed UPDATEs by tenant name ("" on a
	// global channel): what each client should receive from a server that
	// keeps no log of its own.
	ByTenant map[string]uint64
	Errors   uint64 // failed, or matched no row
	Elapsed  time.Duration
	Commit   latency // the UPDATE's round trip, autocommit
}

// run paces rate UPDATEs per second over the writers for d: writer i
// writes at rate/len(conns), its first statement offset by i/rate. A
// writer behind its schedule writes at once, so the offered rate holds
// while the database keeps up, and the committed count shows when not.
func (w *writers) run(ctx context.Context, rate int, d time.Duration) (writeResult, error) {
	var failed atomic.Uint64
	byTenant := make([]atomic.Uint64, max(w.tenants, 1))
	var hist histogram
	start := time.Now()
	end := start.Add(d)
	interval := time.Duration(float64(time.Second) * float64(len(w.conns)) / float64(rate))
	g, gctx := errgroup.WithContext(ctx)
	for i, c := range w.conns {
		g.Go(func() error {
			next := start.Add(time.Duration(i) * interval / time.Duration(len(w.conns)))
			for ; next.Before(end); next = next.Add(interval) {
				if err := sleepUntil(gctx, next); err != nil {
					return err
				}
				row := rand.Int64N(int64(w.rows))
				t0 := time.Now()
				tag, err := c.Exec(gctx, w.sql, w.base+row, t0)
				if err != nil || tag.RowsAffected() != 1 {
					if gctx.Err() != nil {
						return gctx.Err()
					}
					failed.Add(1)
					continue
				}
				hist.record(i, time.Since(t0))
				byTenant[w.tenantOf(row)].Add(1)
			}
			return nil
		})
	}
	err := g.Wait()
	res := writeResult{ByTenant: map[string]uint64{}, Errors: failed.Load(), Elapsed: time.Since(start), Commit: hist.summary()}
	for t := range byTenant {
		n := byTenant[t].Load()
		res.Committed += n
		if w.tenants == 0 {
			res.ByTenant[""] = n
		} else if n > 0 {
			res.ByTenant[tenantName(t)] = n
		}
	}
	return res, err
}

// tenantOf is the index of row's tenant, 0 on a global channel.
func (w *writers) tenantOf(row int64) int {
	if w.tenants == 0 {
		return 0
	}
	return int(row % int64(w.tenants))
}

// sleepUntil waits until t or the end of ctx.
func sleepUntil(ctx context.Context, t time.Time) error {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err()
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		return nil
	}
}
