package main

import (
	"context"
	"encoding/json"
	"strconv"
	"sync"
	"time"

	"github.com/hubdev/hub/store"
)

// tracker pairs each UPDATE's COMMIT returning in a writer with the Deliver
// call that handed its event over, both read from this process's monotonic
// clock. Either half may come first: the reader can see a commit before the
// writer has read the server's reply.
type tracker struct {
	mu       sync.Mutex      // guards the fields below
	halves   map[uint64]half // by the UPDATE's unique value, until both halves are in
	pending  int             // committed, not delivered yet
	lags     []time.Duration // delivered minus committed; negative when delivered first
	rtts     []time.Duration // sent to COMMIT returned
	early    int             // delivered before the writer's COMMIT returned
	foreign  int             // events that no writer of this phase wrote
	batches  int
	events   int
	draining bool          // the writers have stopped
	idle     chan struct{} // closed once draining and nothing is pending
	drained  bool          // idle is closed
}

type half struct{ committed, delivered time.Time }

func newTracker() *tracker {
	return &tracker{halves: make(map[uint64]half), idle: make(chan struct{})}
}

// committed is the writers' OnCommit.
func (t *tracker) committed(key uint64, sent, at time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.rtts = append(t.rtts, at.Sub(sent))
	h, ok := t.halves[key]
	if !ok {
		t.halves[key] = half{committed: at}
		t.pending++
		return
	}
	delete(t.halves, key)
	t.lags = append(t.lags, h.delivered.Sub(at))
	t.early++
}

// deliver is the reader's Deliver: the batch's hand-over time is taken
// first, before any decoding.
func (t *tracker) deliver(_ context.Context, batch []store.Event) error {
	at := time.Now()
	keys := make([]uint64, 0, len(batch))
	var foreign int
	for _, e := range batch {
		var p struct {
			ExchangeOrderID string `json:"exchangeOrderId"`
		}
		if e.Channel != "orders" || json.Unmarshal(e.Payload, &p) != nil {
			foreign++
			continue
		}
		key, err := strconv.ParseUint(p.ExchangeOrderID, 10, 64)
		if err != nil {
			foreign++
			continue
		}
		keys = append(keys, key)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.batches++
	t.events += len(batch)
	t.foreign += foreign
	for _, key := range keys {
		h, ok := t.halves[key]
		if !ok {
			t.halves[key] = half{delivered: at}
			continue
		}
		delete(t.halves, key)
		t.pending--
		t.lags = append(t.lags, at.Sub(h.committed))
	}
	t.closeIdleLocked()
	return nil
}

// closeIdleLocked must be called with t.mu held.
func (t *tracker) closeIdleLocked() {
	if !t.draining || t.drained || t.pending > 0 {
		return
	}
	t.drained = true
	close(t.idle)
}

// drain waits, after the writers have stopped, until every committed
// UPDATE has been delivered or timeout passes, and returns how many were
// not.
func (t *tracker) drain(ctx context.Context, timeout time.Duration) (int, error) {
	t.mu.Lock()
	t.draining = true
	t.closeIdleLocked()
	t.mu.Unlock()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return 0, ctx.Err()
	case <-t.idle:
	case <-timer.C:
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.pending, nil
}
