package main

import (
	"math/bits"
	"sync/atomic"
	"time"
)

// The histogram counts microseconds in log-linear buckets: exact below
// 2*subBuckets, then subBuckets buckets per power of two, so a quantile is
// off by at most 1/subBuckets (1.6 %). Values past 2^maxExp µs (12 days)
// land in the last bucket.
const (
	subBuckets = 64
	maxExp     = 40
	numBuckets = 2*subBuckets + (maxExp-6)*subBuckets
	// histShards spreads the clients' increments over several arrays so
	// that the cores do not fight over the same cache lines.
	histShards = 16
)

// histogram is safe for concurrent use: record uses atomics only.
type histogram struct {
	shards [histShards][numBuckets]atomic.Uint64
	maxUS  atomic.Uint64
}

// bucketOf returns the bucket of v microseconds.
func bucketOf(v uint64) int {
	if v < 2*subBuckets {
		return int(v)
	}
	shift := bits.Len64(v) - 7 // v>>shift is in [64, 128)
	i := 2*subBuckets + (shift-1)*subBuckets + int(v>>shift) - subBuckets
	return min(i, numBuckets-1)
}

// bucketMid is the middle of bucket i's range, in microseconds.
func bucketMid(i int) float64 {
	if i < 2*subBuckets {
		return float64(i)
	}
	j := i - 2*subBuckets
	shift := j/subBuckets + 1
	lo := uint64(j%subBuckets+subBuckets) << shift
	return float64(lo) + float64(uint64(1)<<shift)/2
}

// record adds d to shard (any int; the caller's index spreads the load).
func (h *histogram) record(shard int, d time.Duration) {
	us := uint64(max(d, 0) / time.Microsecond)
	h.shards[shard%histShards][bucketOf(us)].Add(1)
	for {
		m := h.maxUS.Load()
		if us <= m || h.maxUS.CompareAndSwap(m, us) {
			return
		}
	}
}

// latency is the summary of a histogram, in milliseconds.
type latency struct {
	N   uint64  `json:"n"`
	P50 float64 `json:"p50"`
	P90 float64 `json:"p90"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

// summary merges the shards and reads the quantiles.
func (h *histogram) summary() latency {
	var counts [numBuckets]uint64
	var n uint64
	for s := range h.shards {
		for i := range counts {
			c := h.shards[s][i].Load()
			counts[i] += c
			n += c
		}
	}
	l := latency{N: n, Max: float64(h.maxUS.Load()) / 1000}
	if n == 0 {
		return l
	}
	q := func(p float64) float64 {
		rank := uint64(p*float64(n) + 0.5)
		var cum uint64
		for i, c := range counts {
			if cum += c; cum >= max(rank, 1) {
				return min(bucketMid(i)/1000, l.Max)
			}
		}
		return l.Max
	}
	l.P50, l.P90, l.P99 = q(0.50), q(0.90), q(0.99)
	return l
}
