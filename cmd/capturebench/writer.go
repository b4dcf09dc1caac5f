package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/sync/errgroup"
)

// updateSQL is the workload: one autocommitted single-row UPDATE of a random
// order. $1 is unique per statement, so no UPDATE is a no-op, and the lag
// phases find each event's commit time by it (exchangeOrderId in the
// payload); three columns change, one of them a timestamp.
const updateSQL = `UPDATE public.orders SET exchange_order_id = $1, matched_stake = $2, matched_at = now() WHERE order_id = $3`

// writers are the writer connections, one per goroutine, kept across phases.
type writers struct {
	conns []*pgx.Conn
	rows  int
	seq   atomic.Uint64 // the last unique value written
}

func openWriters(ctx context.Context, databaseURL string, n, rows int) (*writers, error) {
	w := &writers{rows: rows}
	for range n {
		conn, err := pgx.Connect(ctx, databaseURL)
		if err != nil {
			w.close()
			return nil, fmt.Errorf("writer connect: %w", err)
		}
		w.conns = append(w.conns, conn)
	}
	return w, nil
}

func (w *writers) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, c := range w.conns {
		_ = c.Close(ctx)
	}
}

// load is one phase's work.
type load struct {
	Duration time.Duration
	// Rate is the total transactions per second across the writers, spread
	// evenly; 0 means as fast as each writer can.
	Rate int
	// OnCommit, if set, is called after each COMMIT returned, with the
	// statement's unique value, the time it was sent and the time the
	// COMMIT returned.
	OnCommit func(key uint64, sent, committed time.Time)
}

type loadResult struct {
	Tx      int64
	Elapsed time.Duration // from the start to the last writer's last COMMIT, at least the phase's duration
}

// TPS is the achieved transactions per second.
func (r loadResult) TPS() float64 { return float64(r.Tx) / r.Elapsed.Seconds() }

// run drives every writer for l.Duration. Nothing is sent after the
// deadline; a statement in flight then is finished and counted.
func (w *writers) run(ctx context.Context, l load) (loadResult, error) {
	start := time.Now()
	deadline := start.Add(l.Duration)
	var total atomic.Int64
	g, ctx := errgroup.WithContext(ctx)
	for i, conn := range w.conns {
		g.Go(func() error {
			n, err := w.drive(ctx, conn, l, writerSchedule(start, i, len(w.conns), l.Rate), deadline)
			total.Add(n)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return loadResult{}, err
	}
	// A paced writer stops after its last slot, which may come a little
	// before the deadline: the phase still lasted l.Duration.
	return loadResult{Tx: total.Load(), Elapsed: max(time.Since(start), l.Duration)}, nil
}

// schedule paces one writer: its first slot and the time between slots
// (0: unpaced).
type schedule struct {
	first    time.Time
	interval time.Duration
}

// writerSchedule staggers writer i of n so that their slots interleave.
func writerSchedule(start time.Time, i, n, rate int) schedule {
	if rate == 0 {
		return schedule{first: start}
	}
	interval := time.Duration(float64(time.Second) * float64(n) / float64(rate))
	return schedule{first: start.Add(interval * time.Duration(i) / time.Duration(n)), interval: interval}
}

func (w *writers) drive(ctx context.Context, conn *pgx.Conn, l load, s schedule, deadline time.Time) (int64, error) {
	var n int64
	timer := time.NewTimer(time.Hour) // rearmed before each wait
	defer timer.Stop()
	for next := s.first; next.Before(deadline); {
		if wait := time.Until(next); wait > 0 {
			timer.Reset(wait)
			select {
			case <-ctx.Done():
				return n, ctx.Err()
			case <-timer.C:
			}
		}
		if err := w.update(ctx, conn, l.OnCommit); err != nil {
			return n, err
		}
		n++
		now := time.Now()
		next = next.Add(s.interval)
		if s.interval == 0 || now.Sub(next) > s.interval {
			next = now // unpaced, or so late that the missed slots are dropped
		}
	}
	return n, nil
}

func (w *writers) update(ctx context.Context, conn *pgx.Conn, onCommit func(uint64, time.Time, time.Time)) error {
	key := w.seq.Add(1)
	id := 1 + rand.IntN(w.rows)
	sent := time.Now()
	tag, err := conn.Exec(ctx, updateSQL, strconv.FormatUint(key, 10), key%10000, id)
	if err != nil {
		return fmt.Errorf("update order %d: %w", id, err)
	}
	if tag.RowsAffected() != 1 {
		return fmt.Errorf("update order %d: %d rows updated, want 1 (was -rows larger than the table?)", id, tag.RowsAffected())
	}
	if onCommit != nil {
		onCommit(key, sent, time.Now())
	}
	return nil
}
