package hub

import (
	"slices"
	"sync/atomic"
	"time"

	"github.com/hubdev/hub/store"
)

// The hub keeps its metrics as plain atomic counters, read in one
// snapshot by Stats; package api turns them into Prometheus series
// (SPEC §8), so the Prometheus client stays out of this package.

// metrics are the hub's counters since start.
type metrics struct {
	slowCloses atomic.Int64
	deliveries [numProtocols]atomic.Int64
	events     atomic.Int64
	batches    atomic.Int64 // non-empty reads handed over
	// filterChecks counts the live path's row filter checks: one per
	// event and distinct filter (SPEC §10).
	filterChecks atomic.Int64
	delivery     Histogram // event read → frame written

	// Set by the reader's hooks (ObserveRead, ObserveBacklog).
	readerLag   atomic.Int64 // nanoseconds
	oldestWrite atomic.Int64 // nanoseconds
}

// deliveryBuckets are the upper bounds of the delivery latency histogram.
var deliveryBuckets = [...]time.Duration{
	time.Millisecond, 2500 * time.Microsecond, 5 * time.Millisecond,
	10 * time.Millisecond, 25 * time.Millisecond, 50 * time.Millisecond,
	100 * time.Millisecond, 250 * time.Millisecond, 500 * time.Millisecond,
	time.Second, 2500 * time.Millisecond, 5 * time.Second,
	10 * time.Second, 30 * time.Second, time.Minute,
}

// Histogram counts durations into fixed buckets, from 1ms to 1min. Observe takes no lock;
// the zero value is ready to use.
type Histogram struct {
	counts [len(deliveryBuckets) + 1]atomic.Uint64 // one per bucket, the last for larger values
	sum    atomic.Int64                            // nanoseconds
}

// Observe records one duration; a negative one (clock skew) counts as 0.
func (h *Histogram) Observe(d time.Duration) {
	d = max(d, 0)
	i := 0
	for i < len(deliveryBuckets) && d > deliveryBuckets[i] {
		i++
	}
	h.counts[i].Add(1)
	h.sum.Add(int64(d))
}

// HistogramSnapshot is a Histogram at one moment.
type HistogramSnapshot struct {
	// Bounds are the buckets' upper bounds, ascending; Cumulative[i]
	// counts the durations at most Bounds[i].
	Bounds     []time.Duration
	Cumulative []uint64
	// Count includes the durations past the last bound.
	Count uint64
	Sum   time.Duration
}

// Snapshot reads the histogram. Observations racing it may show in the
// sum and not yet in the counts, or the other way round.
func (h *Histogram) Snapshot() HistogramSnapshot {
	s := HistogramSnapshot{Bounds: slices.Clone(deliveryBuckets[:]), Cumulative: make([]uint64, len(deliveryBuckets))}
	for i := range h.counts {
		s.Count += h.counts[i].Load()
		if i < len(s.Cumulative) {
			s.Cumulative[i] = s.Count
		}
	}
	s.Sum = time.Duration(h.sum.Load())
	return s
}

// ObserveRead records a read of the log, as the reader's OnRead hook: the
// reader lag is how old the batch's newest event is now, 0 for an empty
// read (SPEC §8).
func (h *Hub) ObserveRead(batch []store.Event) {
	if len(batch) == 0 {
		h.metrics.readerLag.Store(0)
		return
	}
	newest := batch[0].CreatedAt
	for i := range batch {
		if batch[i].CreatedAt.After(newest) {
			newest = batch[i].CreatedAt
		}
	}
	h.metrics.readerLag.Store(int64(max(time.Since(newest), 0)))
	h.metrics.batches.Add(1)
}

// ObserveBacklog records the age of the oldest open write transaction, as
// (part of) the reader's OnBacklog hook (SPEC §2.3).
func (h *Hub) ObserveBacklog(b store.Backlog) {
	h.metrics.oldestWrite.Store(int64(b.OldestWrite))
}
