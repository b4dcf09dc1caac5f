package hub

import (
	"cmp"
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/hubdev/hub/store"
)

// Source is the part of the store the reader needs.
type Source interface {
	EventsAfter(ctx context.Context, after store.Position, limit int) ([]store.Event, error)
	BacklogCheck(ctx context.Context) (store.Backlog, error)
	ClockAdvance(ctx context.Context) error
	Listen(ctx context.Context) (*store.Listener, error)
}

// ReaderConfig configures a Reader.
type ReaderConfig struct {
	// Start is the position to read after; the zero Position reads the whole log.
	Start store.Position
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
	// OnBacklog reports each look behind the watermark. Optional.
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

// Reader tails the event log: it wakes on NOTIFY, polls as a fallback,
// reconnects with backoff, and hands gap-free, duplicate-free batches to
// its consumer. It owns its position.
type Reader struct {
	src  Source
	cfg  ReaderConfig
	wake chan struct{}

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
		// Whatever was notified while we were not listening is read now.
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

// tail reads whenever woken, polled, or held-back events may have been
// released.
func (r *Reader) tail(ctx context.Context) error {
	var failures int
	var heldWait time.Duration
	var unassigned bool // the previous look found the clock waiting for an unassigned id
	for {
		err := r.catchUp(ctx)
		var b store.Backlog
		if err == nil {
			b, err = r.src.BacklogCheck(ctx)
		}
		wait := r.cfg.PollInterval
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case err != nil:
			var deliverErr deliverError
			if errors.As(err, &deliverErr) {
				return deliverErr.err
			}
			failures++
			if failures == 1 || failures%10 == 0 {
				r.cfg.Logger.Warn("reading the event log failed; retrying", "err", err, "attempt", failures)
			}
			wait = backoff(failures)
		default:
			if failures > 0 {
				r.cfg.Logger.Info("reading the event log again", "after_attempts", failures)
			}
			failures = 0
			if r.cfg.OnBacklog != nil {
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
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-r.wake:
		case <-t.C:
		}
		t.Stop()
	}
}

// deliverError marks a consumer's failure, which stops the reader, apart
// from the database's, which it retries.
type deliverError struct{ err error }

func (e deliverError) Error() string { return e.err.Error() }

// catchUp reads and hands over pages until a page comes back short.
func (r *Reader) catchUp(ctx context.Context) error {
	for {
		pos := r.Position()
		batch, err := r.src.EventsAfter(ctx, pos, r.cfg.PageSize)
		if err != nil {
			return err
		}
		if r.cfg.OnRead != nil {
			r.cfg.OnRead(batch)
		}
		if len(batch) == 0 {
			return nil
		}
		if err := r.cfg.Deliver(ctx, batch); err != nil {
			return deliverError{err}
		}
		r.mu.Lock()
		r.pos = batch[len(batch)-1].Pos
		r.mu.Unlock()
		if len(batch) < r.cfg.PageSize {
			return nil
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
