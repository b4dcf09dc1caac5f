package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/hubdev/hub/cmd/internal/centrifugo"
	"github.com/hubdev/hub/hub"
	"github.com/hubdev/hub/store"
)

const (
	attachOrders = `SELECT hub.attach('public.orders', 'orders', 'client', 'account_id', '{INSERT,UPDATE}')`
	detachOrders = `SELECT hub.detach('public.orders')`
)

// bench runs the phases in order; it is used by one goroutine.
type bench struct {
	cfg config
	db  *database
	out *report
	log io.Writer
	w   *writers
}

func (b *bench) run(ctx context.Context) error {
	b.out.setup(b.cfg, b.db.settings, b.cfg.DatabaseURL == "")
	w, err := openWriters(ctx, b.db.url, b.cfg.Writers, b.cfg.Rows)
	if err != nil {
		return err
	}
	defer w.close()
	b.w = w
	if b.cfg.Warmup > 0 {
		b.progress("warm-up: %s attached", b.cfg.Warmup)
		if _, err := w.run(ctx, load{Duration: b.cfg.Warmup}); err != nil {
			return err
		}
	}
	for run := 1; run <= b.cfg.Runs; run++ {
		if err := b.oneRun(ctx, run); err != nil {
			return err
		}
	}
	if b.cfg.Breakdown {
		if err := b.breakdown(ctx); err != nil {
			return err
		}
	}
	b.out.final()
	return nil
}

func (b *bench) oneRun(ctx context.Context, run int) error {
	tax, err := b.taxPhases(ctx, run)
	if err != nil {
		return err
	}
	b.out.tax(tax)
	for _, rate := range []int{b.cfg.Rate, 0} {
		lag, err := b.lagPhase(ctx, run, rate)
		if err != nil {
			return err
		}
		b.out.lag(lag)
	}
	if b.cfg.IdleSamples > 0 {
		lag, err := b.idlePhase(ctx, run)
		if err != nil {
			return err
		}
		b.out.lag(lag)
	}
	return nil
}

// taxResult is one run's phases, one per capture variant.
type taxResult struct {
	Run    int
	Order  []string              // the variants in the order they ran
	Phases map[string]loadResult // by variant name
}

// taxVariant is a way of capturing orders whose cost to the writers is
// measured against none at all.
type taxVariant struct {
	Name  string
	What  string
	Setup []string // run before the phase, after the log is emptied
}

// The hub's doorbell row of a reader that reads back to back (SPEC §2.2):
// the steady state under load, in which writers pay no NOTIFY. Its node is
// none of a real reader's (readerNode).
const disarmedDoorbell = `INSERT INTO hub.doorbell (node, armed) VALUES ('capturebench-disarmed', false)
	ON CONFLICT (node) DO UPDATE SET armed = false`

// taxVariants are measured in every run, their order rotated from run to
// run so that a drift over time (table bloat, autovacuum) favours none.
var taxVariants = []taxVariant{
	{Name: "none", What: "no trigger", Setup: []string{detachOrders}},
	{Name: "hub", What: "hub.capture, doorbell disarmed (a node reading back to back)",
		Setup: []string{attachOrders, disarmedDoorbell}},
	{Name: "hub ringing", What: "hub.capture, no doorbell row: every transaction notifies (an idle node; the capture before migration 7)",
		Setup: []string{attachOrders, `TRUNCATE hub.doorbell`}},
	{Name: "centrifugo", What: "Centrifugo v5's PostgreSQL outbox: to_jsonb(NEW) into the outbox, and pg_notify (cmd/internal/centrifugo)",
		Setup: []string{detachOrders, centrifugo.SchemaSQL, `TRUNCATE ` + centrifugo.OutboxTable, centrifugoOrders}},
}

// centrifugoOrders publishes orders per tenant, as hubload's Centrifugo
// target does.
var centrifugoOrders = centrifugo.AttachSQL(centrifugo.Attach{Table: "public.orders", Channel: "orders",
	TenantColumn: "client", Ops: []string{"INSERT", "UPDATE"}})

// noCentrifugo removes the outbox trigger after its phase.
var noCentrifugo = `DROP TRIGGER IF EXISTS ` + centrifugo.TriggerName + ` ON public.orders`

// baseline is the variant the others are divided by.
const baseline = "none"

// taxPhases measures one phase per variant. Each phase starts from an
// empty log and a vacuumed table; no reader runs.
func (b *bench) taxPhases(ctx context.Context, run int) (taxResult, error) {
	res := taxResult{Run: run, Phases: map[string]loadResult{}}
	for i := range taxVariants {
		v := taxVariants[(i+run-1)%len(taxVariants)]
		res.Order = append(res.Order, v.Name)
		setup := append(append([]string{noCentrifugo}, v.Setup...), `TRUNCATE hub.events`, `VACUUM public.orders`)
		if err := b.db.exec(ctx, setup...); err != nil {
			return taxResult{}, err
		}
		b.progress("run %d: trigger tax, %s", run, v.Name)
		lr, err := b.w.run(ctx, load{Duration: b.cfg.Duration})
		if err != nil {
			return taxResult{}, err
		}
		res.Phases[v.Name] = lr
	}
	return res, b.db.exec(ctx, noCentrifugo, attachOrders, `TRUNCATE hub.doorbell`)
}

// lagResult is one lag phase.
type lagResult struct {
	Run      int
	Rate     int // 0: saturation; idleRate: single changes after silence
	Load     loadResult
	Lag, RTT durStats
	Early    int
	Missing  int
	Foreign  int
	Batches  int
	Events   int
}

// idleRate marks the idle phase's results.
const idleRate = -1

// lagPhase runs the writers at rate (0: saturation) with capture attached
// and a hub.Reader, on a pool of its own, tailing the log from empty.
func (b *bench) lagPhase(ctx context.Context, run, rate int) (lagResult, error) {
	return b.readerPhase(ctx, run, rate, func(ctx context.Context, tr *tracker) (loadResult, error) {
		return b.w.run(ctx, load{Duration: b.cfg.Duration, Rate: rate, OnCommit: tr.committed})
	})
}

// idlePhase writes one change after each -idle-gap of silence, from one
// writer: the reader has armed its doorbell and sleeps (SPEC §2.2), and
// the change must wake it.
func (b *bench) idlePhase(ctx context.Context, run int) (lagResult, error) {
	return b.readerPhase(ctx, run, idleRate, func(ctx context.Context, tr *tracker) (loadResult, error) {
		start := time.Now()
		var n int64
		for range b.cfg.IdleSamples {
			t := time.NewTimer(b.cfg.IdleGap)
			select {
			case <-ctx.Done():
				t.Stop()
				return loadResult{}, ctx.Err()
			case <-t.C:
			}
			if err := b.w.update(ctx, b.w.conns[0], tr.committed); err != nil {
				return loadResult{}, err
			}
			n++
		}
		return loadResult{Tx: n, Elapsed: time.Since(start)}, nil
	})
}

// readerPhase runs write with capture attached and a hub.Reader (with a
// doorbell of its own), on a pool of its own, tailing the log from empty.
func (b *bench) readerPhase(ctx context.Context, run, rate int, write func(context.Context, *tracker) (loadResult, error)) (lagResult, error) {
	b.progress("run %d: reader lag, %s", run, modeName(rate))
	if err := b.db.exec(ctx, `TRUNCATE hub.events`, `VACUUM public.orders`); err != nil {
		return lagResult{}, err
	}
	pool, err := store.Connect(ctx, b.db.url)
	if err != nil {
		return lagResult{}, err
	}
	defer pool.Close()
	tr := newTracker()
	listening := make(chan struct{})
	var once sync.Once
	reader := hub.NewReader(store.New(pool), hub.ReaderConfig{
		Node:        b.readerNode(),
		Deliver:     tr.deliver,
		OnListening: func() { once.Do(func() { close(listening) }) },
		Logger:      slog.New(slog.NewTextHandler(b.log, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	res := lagResult{Run: run, Rate: rate}
	g, gctx := errgroup.WithContext(ctx)
	readerCtx, stopReader := context.WithCancel(gctx)
	defer stopReader()
	g.Go(func() error { return reader.Run(readerCtx) })
	g.Go(func() error {
		defer stopReader()
		select {
		case <-gctx.Done():
			return gctx.Err()
		case <-listening:
		}
		var err error
		if res.Load, err = write(gctx, tr); err != nil {
			return err
		}
		res.Missing, err = tr.drain(gctx, b.cfg.Drain)
		return err
	})
	if err := g.Wait(); err != nil {
		return lagResult{}, err
	}
	if err := ctx.Err(); err != nil {
		return lagResult{}, err
	}
	tr.mu.Lock()
	defer tr.mu.Unlock()
	res.Lag, res.RTT = summarize(tr.lags), summarize(tr.rtts)
	res.Early, res.Foreign, res.Batches, res.Events = tr.early, tr.foreign, tr.batches, tr.events
	return res, nil
}

func modeName(rate int) string {
	switch rate {
	case 0:
		return "saturation"
	case idleRate:
		return "idle: one change after each silence"
	}
	return fmt.Sprintf("paced %d/s", rate)
}

func (b *bench) progress(format string, args ...any) {
	fmt.Fprintf(b.log, format+"\n", args...)
}

// readerNode names the lag reader's doorbell; "" for none (-doorbell=false).
func (b *bench) readerNode() string {
	if b.cfg.Doorbell {
		return "capturebench"
	}
	return ""
}
