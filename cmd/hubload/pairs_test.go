package main

import (
	"math"
	"testing"
)

func TestSpreadOf(t *testing.T) {
	t.Parallel()
	nan := math.NaN()
	for _, c := range []struct {
		in   []float64
		want spread
	}{
		{[]float64{3, 1, 2}, spread{N: 3, Median: 2, Min: 1, Max: 3}},
		{[]float64{4, 1, 2, 3}, spread{N: 4, Median: 2.5, Min: 1, Max: 4}},
		{[]float64{nan, 0.5, math.Inf(1)}, spread{N: 1, Median: 0.5, Min: 0.5, Max: 0.5}},
	} {
		if got := spreadOf(c.in); got != c.want {
			t.Errorf("spreadOf(%v) = %+v, want %+v", c.in, got, c.want)
		}
	}
	if got := spreadOf([]float64{nan}); got.N != 0 || !math.IsNaN(got.Median) || !math.IsNaN(got.Min) {
		t.Errorf("spreadOf(NaN) = %+v, want no values", got)
	}
}

func TestPairsOf(t *testing.T) {
	t.Parallel()
	run := func(server string, n int, p99, deliv, cpu float64) result {
		return result{Server: server, Run: n, Rate: 100, Latency: latency{P99: p99}, DeliveryPerS: deliv,
			ServerCPUPerDelUS: cpu, measuredLatency: true, measuredCPU: true}
	}
	runs := []result{ // C H H C, as load.order makes them
		run(centrifugoName, 1, 20, 1000, 10), run(hubName, 1, 10, 1000, 5),
		run(hubName, 2, 12, 990, 6), run(centrifugoName, 2, 24, 1100, 0),
	}
	got := pairsOf(runs)
	if len(got) != 2 {
		t.Fatalf("%d pairs, want 2", len(got))
	}
	if p := got[0]; p.Pair != 1 || p.Order != "C H" || p.P99 != 0.5 || p.DelivPerS != 1 || p.CPUPerDel != 0.5 {
		t.Errorf("pair 1: %+v", p)
	}
	if p := got[1]; p.Pair != 2 || p.Order != "H C" || p.P99 != 0.5 || p.DelivPerS != 0.9 || !math.IsNaN(p.CPUPerDel) {
		t.Errorf("pair 2: %+v (Centrifugo's CPU of 0 gives no ratio)", p)
	}
	if p := got[0]; !math.IsNaN(p.RSSPerConn) {
		t.Errorf("RSS not measured, ratio %v", p.RSSPerConn)
	}
}

func TestOrderAlternates(t *testing.T) {
	t.Parallel()
	hub, cf := &hubServer{}, &cfServer{}
	l := &load{target: &target{servers: []server{hub, cf}}}
	var got []string
	for n := 1; n <= 3; n++ {
		for _, s := range l.order(n) {
			got = append(got, s.name())
		}
	}
	want := []string{"centrifugo", "hub", "hub", "centrifugo", "centrifugo", "hub"}
	if len(got) != len(want) {
		t.Fatalf("order %v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("order %v, want %v", got, want)
		}
	}
}

func TestRatio(t *testing.T) {
	t.Parallel()
	if got := ratio(1, 4, true); got != 0.25 {
		t.Errorf("ratio(1, 4) = %v", got)
	}
	for _, c := range []struct {
		hub, cf  float64
		measured bool
	}{{1, 4, false}, {1, 0, true}, {-1, 4, true}} {
		if got := ratio(c.hub, c.cf, c.measured); !math.IsNaN(got) {
			t.Errorf("ratio(%v, %v, %v) = %v, want NaN", c.hub, c.cf, c.measured, got)
		}
	}
}
