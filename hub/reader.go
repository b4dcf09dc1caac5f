package hub

import (
	"cmp"
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/hubdev/hub/store"
)

// Source is the part of the store the reader needs.
type Source interface {
	EventsAfter(ctx context.Context, after store.Position, limit int) ([]store.Event, uint64, error)
	BacklogCheck(ctx context.Context) (store.Backlog, error)
	OldestWrite(ctx context.Context) (time.Duration, error)
	ClockAdvance(ctx context.Context) error
	DoorbellArm(ctx context.Context, node string) (uint64, error)
	DoorbellDisarm(ctx context.Context, node string) error
	Listen(ctx context.Context) (*store.Listener, error)
}

// ReaderConfig configures a Reader.
type ReaderConfig struct {
	// Start is the position to read after; the zero Position reads the whole log.
	Start store.Position
	// Node names the reader's doorbell (SPEC §2.2): it is disarmed while
	// the reader reads back to back, so that writers pay no NOTIFY then.
	// "" keeps the doorbell ringing on every change, as for a reader
	// outside a node.
	Node string
	// Deliver receives each batch, in position order, one call at a time;
	// the batch is the consumer's to keep. An error stops the reader.
	Deliver func(ctx context.Context, batch []store.Event) error
	// PageSize is the largest batch (default 1000).
	PageSize int
	// PollInterval bounds the cost of a lost notification (default 1s).
	PollInterval time.Duration
	// IdlePing is how long the LISTEN connection may stay silent before it
	// is pinged (default 30s).
	IdlePing time.Duration
	// OnChannels is called when hub.attach or hub.detach changed the
	// channels, and after every (re)connection of the listener, since a
	// change may have been missed meanwhile. Optional.
	OnChannels func()
	// OnListening is called each time the LISTEN connection is
	// (re)established, OnListenerLost each time it is lost. Optional.
	OnListening    func()
	OnListenerLost func()
	// OnRead reports each read of the log, empty ones included, just
	// before its batch is handed to Deliver; the batch must not be
	// modified or kept. Optional; the hub's ObserveRead records the reader
	// lag with it (SPEC §8).
	OnRead func(batch []store.Event)
	// OnBacklog reports each look behind the watermark, and the age of the
	// oldest write transaction about once a second. Optional.
	OnBacklog func(store.Backlog)
	Logger    *slog.Logger
}

func (c ReaderConfig) withDefaults() ReaderConfig {
	c.PageSize = cmp.Or(c.PageSize, 1000)
	c.PollInterval = cmp.Or(c.PollInterval, time.Second)
	c.IdlePing = cmp.Or(c.IdlePing, 30*time.Second)
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Held-back events are looked for again quickly, with backoff between
// these bounds: the commit of an unrelated transaction that releases them
// rings no doorbell (SPEC §2.3).
const (
	heldBackMin = 2 * time.Millisecond
	heldBackMax = 50 * time.Millisecond
)

// The adaptive doorbell (SPEC §2.2). A reader that finds changes again
// within busyWithin of the last ones disarms its doorbell and polls every
// busyPoll instead: at that rate it reads about as often as it would be
// rung, and writers stop paying PostgreSQL's NOTIFY lock. After idleAfter
// without a change it arms again, and polls every busyPoll until its
// watermark has passed every transaction that may have read the doorbell
// disarmed; then it sleeps until rung.
const (
	busyWithin = 5 * time.Millisecond
	busyPoll   = 2 * time.Millisecond
	idleAfter  = 50 * time.Millisecond
)

// oldestWriteEvery paces the look at pg_stat_activity for the gauge and
// the warning of an open write transaction (SPEC §2.3).
const oldestWriteEvery = time.Second

// Reader tails the event log: it wakes on NOTIFY, polls as a fallback,
// reconnects with backoff, and hands gap-free, duplicate-free batches to
// its consumer. It owns its position.
type Reader struct {
	src  Source
	cfg  ReaderConfig
	wake chan struct{}
	// rearm: the listener reconnected, maybe to a database that restarted
	// and emptied hub.doorbell; the tail arms again.
	rearm atomic.Bool

	mu  sync.Mutex // guards pos
	pos store.Position
}

// NewReader returns a reader that starts after cfg.Start.
func NewReader(src Source, cfg ReaderConfig) *Reader {
	cfg = cfg.withDefaults()
	return &Reader{src: src, cfg: cfg, wake: make(chan struct{}, 1), pos: cfg.Start}
}

// Position is the position of the last event handed over.
func (r *Reader) Position() store.Position {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.pos
}

// Run reads until ctx ends or Deliver fails.
func (r *Reader) Run(ctx context.Context) error {
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return r.listen(ctx) })
	g.Go(func() error { return r.tail(ctx) })
	err := g.Wait()
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

func (r *Reader) ring() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// listen keeps a LISTEN connection open and turns notifications into
// wake-ups. While it is down the tail goes on polling.
func (r *Reader) listen(ctx context.Context) error {
	var failures int
	for {
		l, err := r.src.Listen(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			failures++
			r.cfg.Logger.Warn("listener connect failed", "err", err, "attempt", failures)
			if !sleep(ctx, backoff(failures)) {
				return nil
			}
			continue
		}
		failures = 0
		if r.cfg.OnListening != nil {
			r.cfg.OnListening()
		}
		// Whatever was notified while we were not listening is read now,
		// and the doorbell is armed again.
		r.rearm.Store(true)
		r.ring()
		if r.cfg.OnChannels != nil {
			r.cfg.OnChannels()
		}
		err = r.waitLoop(ctx, l)
		l.Close()
		if r.cfg.OnListenerLost != nil {
			r.cfg.OnListenerLost()
		}
		if ctx.Err() != nil {
			return nil
		}
		r.cfg.Logger.Warn("listener connection lost; reconnecting", "err", err)
	}
}

func (r *Reader) waitLoop(ctx context.Context, l *store.Listener) error {
	for {
		ch, err := l.Wait(ctx, r.cfg.IdlePing)
		switch {
		case errors.Is(err, store.ErrIdle):
		case err != nil:
			return err
		case ch == store.NotifyChannels:
			if r.cfg.OnChannels != nil {
				r.cfg.OnChannels()
			}
		default:
			r.ring()
		}
	}
}

// doorbell is the tail's view of its doorbell (SPEC §2.2).
type doorbell int

const (
	// ringing: not armed by the reader, but a capture that finds no row
	// for it rings, or one that the reader armed and may since have lost
	// (a crash empties the table; another node forgets a stopped node's
	// row). Either way the reader arms before it sleeps.
	ringing doorbell = iota
	// arming: armed; some transaction that read it disarmed may still be
	// running, so the reader polls until its watermark passes them.
	arming
	// armed: every change the reader has not read rings.
	armed
	// disarmed: the reader polls every busyPoll.
	disarmed
)

// tail reads whenever woken, polled, or held-back events may have been
// released.
func (r *Reader) tail(ctx context.Context) error {
	var failures int
	var heldWait time.Duration
	var unassigned bool // the previous look found the clock waiting for an unassigned id
	var bell doorbell
	var armID uint64         // arming: the id taken after the arm, which the watermark must pass
	var lastEvents time.Time // when a read last found events
	var oldest time.Duration
	var nextOldest time.Time
	for {
		n, watermark, err := r.catchUp(ctx)
		now := time.Now()
		if err == nil && n > 0 {
			if r.cfg.Node != "" && bell != disarmed && now.Sub(lastEvents) < busyWithin {
				if err = r.src.DoorbellDisarm(ctx, r.cfg.Node); err == nil {
					bell = disarmed
				}
			}
			lastEvents = now
		}
		report := false
		if err == nil && !now.Before(nextOldest) {
			if oldest, err = r.src.OldestWrite(ctx); err == nil {
				nextOldest, report = now.Add(oldestWriteEvery), true
			}
		}
		// Disarmed, the reader polls soon anyway: the look behind the
		// watermark is for a reader about to sleep, or one that found
		// nothing (the clock may wait for an unassigned id).
		var b store.Backlog
		if err == nil && (bell != disarmed || n == 0) {
			b, err = r.src.BacklogCheck(ctx)
			report = true
		}
		b.OldestWrite = oldest
		if ctx.Err() != nil {
			return ctx.Err()
		}
		wait := r.cfg.PollInterval
		if err != nil {
			var deliverErr deliverError
			if errors.As(err, &deliverErr) {
				return deliverErr.err
			}
			failures++
			if failures == 1 || failures%10 == 0 {
				r.cfg.Logger.Warn("reading the event log failed; retrying", "err", err, "attempt", failures)
			}
			wait = backoff(failures)
			if bell != disarmed {
				bell = ringing // the database may have restarted, emptying hub.doorbell
			}
		} else {
			if failures > 0 {
				r.cfg.Logger.Info("reading the event log again", "after_attempts", failures)
			}
			failures = 0
			if report && r.cfg.OnBacklog != nil {
				r.cfg.OnBacklog(b)
			}
			if b.HeldBack {
				heldWait = min(max(heldBackMin, 2*heldWait), heldBackMax)
				wait = heldWait
			} else {
				heldWait = 0
			}
			// Twice in a row: no other writer moved the clock meanwhile,
			// and on a quiet database none may (SPEC §2.2's clock can be
			// an id that no transaction has taken yet).
			if b.Unassigned && unassigned {
				if err := r.src.ClockAdvance(ctx); err == nil {
					wait = 0
				}
			}
			unassigned = b.Unassigned
			if r.rearm.Swap(false) && bell != disarmed {
				bell = ringing
			}
			if r.cfg.Node != "" {
				bell, armID, wait = r.bellStep(ctx, bell, armID, n, watermark, now.Sub(lastEvents), b.HeldBack, wait)
			}
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-r.wake:
		case <-t.C:
			if bell == armed && wait == r.cfg.PollInterval {
				bell = ringing // a whole poll without a ring: arm again, in case the row went
			}
		}
		t.Stop()
	}
}

// bellStep moves the doorbell on after a read that found n events, with
// watermark, idle since the last events found, and heldBack when
// committed events wait behind an open transaction; it returns the
// doorbell, the id the watermark must pass, and how long the tail may wait (at most
// wait).
func (r *Reader) bellStep(ctx context.Context, bell doorbell, armID uint64, n int, watermark uint64,
	idle time.Duration, heldBack bool, wait time.Duration) (doorbell, uint64, time.Duration) {
	switch {
	case bell == disarmed && heldBack:
		// Not idle: the writes go on behind an open transaction, and the
		// held-back backoff looks again soon enough.
		return bell, armID, wait
	case bell == disarmed && (n > 0 || idle < idleAfter):
		return bell, armID, min(wait, busyPoll)
	case bell == disarmed, bell == ringing:
		x, err := r.src.DoorbellArm(ctx, r.cfg.Node)
		if err != nil {
			r.cfg.Logger.Debug("arming the doorbell failed", "err", err)
			return bell, armID, min(wait, busyPoll)
		}
		return arming, x, 0 // the next read may already pass x
	case bell == arming && watermark < armID:
		return bell, armID, min(wait, busyPoll)
	}
	return armed, armID, wait
}

// deliverError marks a consumer's failure, which stops the reader, apart
// from the database's, which it retries.
type deliverError struct{ err error }

func (e deliverError) Error() string { return e.err.Error() }

// catchUp reads and hands over pages until a page comes back short. It
// returns the number of events handed over and the watermark of the last
// read.
func (r *Reader) catchUp(ctx context.Context) (int, uint64, error) {
	n := 0
	for {
		pos := r.Position()
		batch, watermark, err := r.src.EventsAfter(ctx, pos, r.cfg.PageSize)
		if err != nil {
			return n, 0, err
		}
		if r.cfg.OnRead != nil {
			r.cfg.OnRead(batch)
		}
		if len(batch) == 0 {
			return n, watermark, nil
		}
		if err := r.cfg.Deliver(ctx, batch); err != nil {
			return n, 0, deliverError{err}
		}
		n += len(batch)
		r.mu.Lock()
		r.pos = batch[len(batch)-1].Pos
		r.mu.Unlock()
		if len(batch) < r.cfg.PageSize {
			return n, watermark, nil
		}
	}
}

// backoff is the jittered wait before retry n (1-based): 100ms doubling to
// at most 2s, so a database that is back is used again within 2s.
func backoff(n int) time.Duration {
	d := 100 * time.Millisecond << min(n-1, 5)
	d = min(d, 2*time.Second)
	return d/2 + rand.N(d/2+1)
}

// sleep waits d or until ctx ends; false means ctx ended.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
