package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/sync/errgroup"

	"github.com/hubdev/hub/store"
)

// run state shared by the writers and the clients.
type soakRun struct {
	cfg     config
	pool    *pgxpool.Pool
	hubURL  string
	tenants []tenant

	final   chan struct{} // closed when writing has stopped and targets are set
	targets map[string]store.Position

	written   atomic.Int64 // rows written
	sessions  atomic.Int64 // WebSocket connections made
	resumes   atomic.Int64 // subscribes with since after a first one
	closes    sync.Map     // close code → *atomic.Int64, server-initiated closes
	dialFails atomic.Int64

	mu      sync.Mutex // guards results
	results []result
}

type tenant struct{ name, key string }

// result is one logical client's verdict.
type result struct {
	tenant   string
	received int
	expected int
	problem  string // "" when it got every event once, in order
}

func soak(ctx context.Context, c config) (*report, error) {
	began := time.Now()
	e, err := setup(ctx, c)
	if err != nil {
		return nil, err
	}
	defer e.close()
	pool, err := store.Connect(ctx, e.databaseURL)
	if err != nil {
		return nil, err
	}
	defer pool.Close()
	r := &soakRun{cfg: c, pool: pool, hubURL: e.hubURL, final: make(chan struct{})}
	if err := r.createTenants(ctx); err != nil {
		return nil, err
	}
	from, err := store.New(pool).EventNewest(ctx)
	if err != nil {
		return nil, err
	}
	rep := &report{cfg: c, hubURL: e.hubURL, hubLog: e.hubLog, setup: time.Since(began)}
	if rep.start, err = scrape(e.hubURL); err != nil {
		return nil, fmt.Errorf("scrape /metrics: %w", err)
	}
	rep.soakStart = selfMetrics()
	started := time.Now()

	g, gctx := errgroup.WithContext(ctx)
	writeCtx, stopWriting := context.WithTimeout(gctx, c.duration)
	defer stopWriting()
	var writers sync.WaitGroup
	for i := range c.writers {
		writers.Add(1)
		g.Go(func() error { defer writers.Done(); return r.write(writeCtx, i) })
	}
	for i := range c.clients {
		g.Go(func() error { r.clientSlot(gctx, i); return nil })
	}
	g.Go(func() error {
		writers.Wait()
		if gctx.Err() != nil {
			close(r.final)
			return nil
		}
		var err error
		r.targets, err = r.lastPositions(context.WithoutCancel(gctx))
		close(r.final)
		return err
	})
	err = g.Wait()
	rep.duration = time.Since(started)
	if err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
		return rep, err
	}
	rep.end, rep.endErr = r.settledMetrics(e.hubURL)
	rep.soakEnd = selfMetrics()
	if rep.events, err = r.countAfter(context.WithoutCancel(ctx), from); err != nil {
		return rep, err
	}
	rep.fill(r)
	if ctx.Err() != nil {
		rep.interrupted = true
	}
	return rep, nil
}

// createTenants makes one hub client and key per tenant, with room for
// every client slot at once.
func (r *soakRun) createTenants(ctx context.Context) error {
	st := store.New(r.pool)
	suffix := strconv.FormatInt(time.Now().Unix(), 36)
	for i := range r.cfg.tenants {
		name := fmt.Sprintf("soak%d-%s", i, suffix)
		if err := st.ClientEnsure(ctx, name); err != nil {
			return err
		}
		_, key, err := st.APIKeyCreate(ctx, store.APIKeyCreateParams{Client: name, Label: "soak", MaxConnections: 2*r.cfg.clients + 10})
		if err != nil {
			return err
		}
		r.tenants = append(r.tenants, tenant{name, key})
	}
	return nil
}

// write inserts and updates orders at its share of the rate, in
// transactions of varying size, until ctx ends.
func (r *soakRun) write(ctx context.Context, n int) error {
	const tick = 50 * time.Millisecond
	perTick := r.cfg.rate * tick.Seconds() / float64(r.cfg.writers)
	rng := rand.New(rand.NewPCG(uint64(n), uint64(time.Now().UnixNano())))
	t := time.NewTicker(tick)
	defer t.Stop()
	var owed float64
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		owed += perTick
		rows := int(owed)
		if rows == 0 {
			continue
		}
		owed -= float64(rows)
		ten := r.tenants[rng.IntN(len(r.tenants))].name
		// Each write runs to its end: a cancelled statement may still
		// commit after Exec returns, behind the end-of-run targets.
		wctx := context.WithoutCancel(ctx)
		var err error
		if rng.IntN(5) == 0 {
			// UPDATE the tenant's newest rows: one event per changed row.
			var tag interface{ RowsAffected() int64 }
			tag, err = r.pool.Exec(wctx, `UPDATE orders SET matched_stake = coalesce(matched_stake, 0) + 1, matched_at = now()
				WHERE order_id IN (SELECT order_id FROM orders WHERE client = $1 ORDER BY order_id DESC LIMIT $2)`, ten, rows)
			if err == nil {
				r.written.Add(tag.RowsAffected())
			}
		} else {
			// Sometimes hold the transaction open a little, so that later
			// xids commit first and the watermark holds events back.
			_, err = r.pool.Exec(wctx, `INSERT INTO orders (client, account_id, order_status, order_stake)
				SELECT $1, 'acc-' || g, CASE WHEN $3 THEN (SELECT 'open' FROM pg_sleep(0.02)) ELSE 'open' END, g
				FROM generate_series(1, $2) g`, ten, rows, rng.IntN(10) == 0)
			if err == nil {
				r.written.Add(int64(rows))
			}
		}
		if err != nil {
			return fmt.Errorf("write: %w", err)
		}
	}
}

// lastPositions is each tenant's newest orders event: what a client still
// connected at the end must reach.
func (r *soakRun) lastPositions(ctx context.Context) (map[string]store.Position, error) {
	out := map[string]store.Position{}
	for _, t := range r.tenants {
		var xid string
		var id int64
		err := r.pool.QueryRow(ctx, `SELECT coalesce(max(xid)::text, '0'), coalesce(max(id), 0) FROM (
			SELECT xid, id FROM hub.events WHERE client = $1 AND channel = 'orders' ORDER BY xid DESC, id DESC LIMIT 1) e`, t.name).Scan(&xid, &id)
		if err != nil {
			return nil, fmt.Errorf("newest event of %s: %w", t.name, err)
		}
		x, _ := strconv.ParseUint(xid, 10, 64)
		out[t.name] = store.Position{Xid: x, ID: id}
	}
	return out, nil
}

// expected is the tenant's orders events in (from, to], in position order.
func (r *soakRun) expected(ctx context.Context, ten string, from, to store.Position) ([]store.Position, error) {
	rows, err := r.pool.Query(ctx, `SELECT xid::text AS xt, id FROM hub.events e
		WHERE client = $1 AND channel = 'orders'
		  AND (xid, id) > ($2::text::xid8, $3) AND (xid, id) <= ($4::text::xid8, $5)
		ORDER BY e.xid, e.id`, ten, strconv.FormatUint(from.Xid, 10), from.ID, strconv.FormatUint(to.Xid, 10), to.ID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.Position
	for rows.Next() {
		var xid string
		var p store.Position
		if err := rows.Scan(&xid, &p.ID); err != nil {
			return nil, err
		}
		p.Xid, _ = strconv.ParseUint(xid, 10, 64)
		out = append(out, p)
	}
	return out, rows.Err()
}

func (r *soakRun) countAfter(ctx context.Context, from store.Position) (int64, error) {
	var n int64
	err := r.pool.QueryRow(ctx, `SELECT count(*) FROM hub.events WHERE (xid, id) > ($1::text::xid8, $2)`,
		strconv.FormatUint(from.Xid, 10), from.ID).Scan(&n)
	return n, err
}

func (r *soakRun) record(res result) {
	r.mu.Lock()
	r.results = append(r.results, res)
	r.mu.Unlock()
}

func (r *soakRun) countClose(code int) {
	v, _ := r.closes.LoadOrStore(code, new(atomic.Int64))
	v.(*atomic.Int64).Add(1)
}

// settledMetrics scrapes once the hub has no connection left (or after 15 s).
func (r *soakRun) settledMetrics(base string) (hubMetrics, error) {
	deadline := time.Now().Add(15 * time.Second)
	for {
		m, err := scrape(base)
		if (err == nil && m.Connections == 0) || time.Now().After(deadline) {
			return m, err
		}
		time.Sleep(100 * time.Millisecond) // polling an external process; nothing to wait on
	}
}

// selfMetrics is the soak process's own goroutines, for leak spotting.
func selfMetrics() int { return runtime.NumGoroutine() }
