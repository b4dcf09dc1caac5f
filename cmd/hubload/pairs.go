package main

import (
	"math"
	"slices"
)

// pairRatios are one pair's hub/centrifugo ratios: below 1, the hub's
// figure is the lower. A figure not measured on either side is NaN.
type pairRatios struct {
	Pair       int
	Order      string  // "C H" or "H C": which ran first
	P99        float64 // latency p99
	DelivPerS  float64 // deliveries per second during the write phase
	CPUPerDel  float64 // server CPU per delivery
	CPUPct     float64 // server CPU, of one core
	RSSPerConn float64 // server RSS per connection
}

// pairsOf matches each run of the hub with Centrifugo's of the same pair,
// in the order the runs were made.
func pairsOf(runs []result) []pairRatios {
	var out []pairRatios
	for i, h := range runs {
		if h.Server != hubName {
			continue
		}
		j := slices.IndexFunc(runs, func(r result) bool { return r.Server == centrifugoName && r.Run == h.Run })
		if j < 0 {
			continue
		}
		c := runs[j]
		p := pairRatios{Pair: h.Run, Order: "H C",
			P99:        ratio(h.Latency.P99, c.Latency.P99, h.measuredLatency && c.measuredLatency),
			DelivPerS:  ratio(h.DeliveryPerS, c.DeliveryPerS, h.Rate > 0),
			CPUPerDel:  ratio(h.ServerCPUPerDelUS, c.ServerCPUPerDelUS, h.measuredCPU && c.measuredCPU && h.Rate > 0),
			CPUPct:     ratio(h.ServerCPUPct, c.ServerCPUPct, h.measuredCPU && c.measuredCPU),
			RSSPerConn: ratio(h.RSSPerConnKB, c.RSSPerConnKB, h.measuredRSS && c.measuredRSS),
		}
		if j < i {
			p.Order = "C H"
		}
		out = append(out, p)
	}
	return out
}

// ratio is hub/cf, or NaN when not measured, cf is not positive or hub
// is negative (an RSS that fell while connections were added: heap of an
// earlier run given back).
func ratio(hub, cf float64, measured bool) float64 {
	if !measured || cf <= 0 || hub < 0 {
		return math.NaN()
	}
	return hub / cf
}

// spread is the median and the range of some values.
type spread struct {
	N                int // how many values were finite
	Median, Min, Max float64
}

// spreadOf summarizes the finite values of vs; with none, every figure is
// NaN.
func spreadOf(vs []float64) spread {
	var fin []float64
	for _, v := range vs {
		if !math.IsNaN(v) && !math.IsInf(v, 0) {
			fin = append(fin, v)
		}
	}
	if len(fin) == 0 {
		return spread{Median: math.NaN(), Min: math.NaN(), Max: math.NaN()}
	}
	slices.Sort(fin)
	m := fin[len(fin)/2]
	if len(fin)%2 == 0 {
		m = (fin[len(fin)/2-1] + m) / 2
	}
	return spread{N: len(fin), Median: m, Min: fin[0], Max: fin[len(fin)-1]}
}
