package main

import (
	"testing"
	"time"
)

func TestBucketOfIsMonotonicAndTight(t *testing.T) {
	prev := -1
	for v := uint64(0); v < 1<<22; v += 1 + v/1000 {
		i := bucketOf(v)
		if i < prev {
			t.Fatalf("bucketOf(%d) = %d < %d", v, i, prev)
		}
		prev = i
		if mid := bucketMid(i); v > 0 && (mid < float64(v)*0.98 || mid > float64(v)*1.02) {
			t.Fatalf("bucketMid(bucketOf(%d)) = %v, off by more than 2 %%", v, mid)
		}
	}
	if got := bucketOf(1 << 62); got != numBuckets-1 {
		t.Fatalf("huge value in bucket %d, want the last", got)
	}
}

func TestHistogramSummary(t *testing.T) {
	var h histogram
	for i := 1; i <= 1000; i++ {
		h.record(i, time.Duration(i)*time.Millisecond)
	}
	l := h.summary()
	if l.N != 1000 || l.Max != 1000 {
		t.Fatalf("N %d Max %v", l.N, l.Max)
	}
	for _, c := range []struct{ got, want float64 }{{l.P50, 500}, {l.P90, 900}, {l.P99, 990}} {
		if c.got < c.want*0.98 || c.got > c.want*1.02 {
			t.Fatalf("quantile %v, want about %v", c.got, c.want)
		}
	}
}
