package main

import (
	"testing"
	"time"
)

func TestDeliverChecks(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 12, 4, 19, 0, 0, 0, time.UTC)
	f := &fleet{p: fleetParams{Start: start}}
	c := &wsClient{tenant: "hubload-t001"}
	at := func(ms int) time.Time { return start.Add(time.Duration(ms) * time.Millisecond) }
	for _, d := range []delivery{
		{stamp: at(-5), tenant: "hubload-t001", row: 1, seq: 1, hasSeq: true},                      // early: before the run
		{pos: position{10, 1}, stamp: at(1), tenant: "hubload-t001", row: 1, seq: 2, hasSeq: true}, // fine
		{pos: position{10, 2}, stamp: at(2), tenant: "hubload-t001", row: 2, seq: 7, hasSeq: true}, // fine: another row
		{pos: position{10, 2}, stamp: at(2), tenant: "hubload-t001", row: 2, seq: 7, hasSeq: true}, // duplicate
		{pos: position{11, 1}, stamp: at(3), tenant: "hubload-t001", row: 1, seq: 4, hasSeq: true}, // fine: a gap is not disorder
		{pos: position{11, 2}, stamp: at(4), tenant: "hubload-t001", row: 1, seq: 3, hasSeq: true}, // out of order
		{pos: position{11, 3}, stamp: at(5), tenant: "hubload-t002", row: 3, seq: 1, hasSeq: true}, // another tenant's
		{tenant: "hubload-t001"}, // no stamp, no row
	} {
		f.deliver(c, d, at(10))
	}
	got := [...]uint64{c.early.Load(), c.received.Load(), c.disorder.Load(), c.posDisorder.Load(), c.foreign.Load(), c.noStamp.Load()}
	if want := [...]uint64{1, 7, 2, 1, 1, 1}; got != want {
		t.Fatalf("early, received, disorder, position disorder, foreign, no stamp = %v, want %v", got, want)
	}
	if l := f.hist.summary(); l.N != 6 {
		t.Fatalf("%d latencies, want 6", l.N)
	}
}
