package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strings"
	"sync"
	"text/tabwriter"
)

// report writes a JSON line per run as it ends and, at the end, the
// tables.
type report struct {
	w   io.Writer
	cfg config

	mu   sync.Mutex // guards runs; final may race with the last add on Ctrl-C
	runs []result
}

func newReport(w io.Writer, cfg config) *report { return &report{w: w, cfg: cfg} }

func (r *report) add(res result) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.runs = append(r.runs, res)
	b, _ := json.Marshal(res)
	fmt.Fprintf(r.w, "%s\n", b)
}

// final prints the table of the runs measured and, with two servers, the
// table of the pairs.
func (r *report) final() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.runs) == 0 {
		return
	}
	decode := "json"
	if r.cfg.Scan {
		decode = "scan"
	}
	fmt.Fprintf(r.w, "\nhubload %s: %d clients, %s, %d tenants, %d UPDATE/s for %s, %d writers, -decode %s\n",
		r.cfg.Workload, r.cfg.Clients, r.cfg.channel(), r.cfg.Tenants, r.cfg.Rate, r.cfg.Duration, r.cfg.Writers, decode)
	tw := tabwriter.NewWriter(r.w, 0, 0, 2, ' ', tabwriter.AlignRight)
	if r.cfg.idle() {
		r.idleTable(tw)
	} else {
		r.writeTable(tw)
	}
	tw.Flush()
	r.notes()
	if pairs := pairsOf(r.runs); len(pairs) > 0 {
		fmt.Fprintf(r.w, "\npairs, hub/centrifugo (below 1: the hub's figure is lower)\n")
		tw := tabwriter.NewWriter(r.w, 0, 0, 2, ' ', tabwriter.AlignRight)
		r.pairTable(tw, pairs)
		tw.Flush()
	}
}

// notes lists what the table has no column for.
func (r *report) notes() {
	for _, res := range r.runs {
		if len(res.Dropped) > 0 {
			fmt.Fprintf(r.w, "run %d %s: connections ended by the server: %v\n", res.Run, res.Server, res.Dropped)
		}
		if res.Undecodable > 0 || res.NoStamp > 0 || res.Early > 0 {
			fmt.Fprintf(r.w, "run %d %s: %d undecodable messages, %d publications without a stamp, %d early (ignored)\n",
				res.Run, res.Server, res.Undecodable, res.NoStamp, res.Early)
		}
		if res.OutboxLeft != nil && *res.OutboxLeft > 0 {
			fmt.Fprintf(r.w, "run %d %s: %d outbox rows not yet published at the end of the drain\n", res.Run, res.Server, *res.OutboxLeft)
		}
	}
}

func (r *report) writeTable(tw io.Writer) {
	row(tw, "run", "server", "conn", "commit/s", "asked/s", "deliv/s", "deliv%", "lost", "extra", "disorder", "pos-dis", "x-tenant",
		"p50 ms", "p90 ms", "p99 ms", "max ms", "drain s", "srv µs/deliv", "srv cpu%", "busy%", "pg cpu%", "tool cpu%", "other cpu%", "load1", "rss/conn KiB")
	for _, res := range r.runs {
		l := res.Latency
		posDis := "-"
		if res.PositionDisorder != nil {
			posDis = fmt.Sprint(*res.PositionDisorder)
		}
		row(tw, res.Run, res.Server, res.Connected, f0(res.CommitPerS), f0(res.AskedPerS), f0(res.DeliveryPerS), f2(res.DeliveredPct),
			res.Lost, res.Extra, res.Disorder, posDis, res.CrossTenant,
			opt(res.measuredLatency, f2(l.P50)), opt(res.measuredLatency, f2(l.P90)), opt(res.measuredLatency, f2(l.P99)),
			opt(res.measuredLatency, f2(l.Max)), f2(res.DrainS),
			opt(res.measuredCPU, f2(res.ServerCPUPerDelUS)), opt(res.measuredCPU, f0(res.ServerCPUPct)),
			f0(res.MachineBusyPct), opt(res.PGCPUPct != 0, f0(res.PGCPUPct)), f0(res.ToolCPUPct), f0(res.OtherCPUPct), f2(res.LoadAvg1), opt(res.measuredRSS, f2(res.RSSPerConnKB)))
	}
}

func (r *report) idleTable(tw io.Writer) {
	row(tw, "run", "server", "clients", "connected", "failed", "held", "connect s", "rss before KiB", "rss after KiB",
		"rss/conn KiB", "goroutines/conn", "stack/conn KiB", "heap/conn KiB", "srv cpu% idle", "busy%", "load1")
	for _, res := range r.runs {
		row(tw, res.Run, res.Server, res.Clients, res.Connected, res.ConnectFailed, res.Held, f2(res.ConnectS),
			opt(res.measuredRSS, fmt.Sprint(res.ServerRSSBeforeKB)), opt(res.measuredRSS, fmt.Sprint(res.ServerRSSAfterKB)),
			opt(res.measuredRSS, f2(res.RSSPerConnKB)), goFig(res.GoPerConn, func(p perConn) float64 { return p.Goroutines }),
			goFig(res.GoPerConn, func(p perConn) float64 { return p.StackKiB }),
			goFig(res.GoPerConn, func(p perConn) float64 { return p.HeapKiB }), opt(res.measuredCPU, f2(res.ServerCPUPct)), f0(res.MachineBusyPct), f2(res.LoadAvg1))
	}
}

// pairTable prints each pair's ratios, then their median and range.
func (r *report) pairTable(tw io.Writer, pairs []pairRatios) {
	type column struct {
		name string
		fig  func(pairRatios) float64
	}
	cols := []column{
		{"p99", func(p pairRatios) float64 { return p.P99 }},
		{"deliv/s", func(p pairRatios) float64 { return p.DelivPerS }},
		{"srv µs/deliv", func(p pairRatios) float64 { return p.CPUPerDel }},
	}
	// The RSS per connection is compared on fresh processes only (idle
	// runs restart the servers): in the write workloads the heap of the
	// earlier runs blurs it.
	if r.cfg.idle() {
		cols = []column{
			{"rss/conn", func(p pairRatios) float64 { return p.RSSPerConn }},
			{"srv cpu% idle", func(p pairRatios) float64 { return p.CPUPct }},
		}
	}
	head := []any{"pair", "order"}
	for _, c := range cols {
		head = append(head, c.name)
	}
	row(tw, head...)
	spreads := make([]spread, len(cols))
	for k, c := range cols {
		var vs []float64
		for _, p := range pairs {
			vs = append(vs, c.fig(p))
		}
		spreads[k] = spreadOf(vs)
	}
	for _, p := range pairs {
		cells := []any{p.Pair, p.Order}
		for _, c := range cols {
			cells = append(cells, ratioCell(c.fig(p)))
		}
		row(tw, cells...)
	}
	med, rng := []any{"median", ""}, []any{"min–max", ""}
	for _, s := range spreads {
		med = append(med, ratioCell(s.Median))
		rng = append(rng, opt(s.N > 0, fmt.Sprintf("%.2f–%.2f", s.Min, s.Max)))
	}
	row(tw, med...)
	row(tw, rng...)
}

func ratioCell(v float64) string { return opt(!math.IsNaN(v), f2(v)) }

func row(w io.Writer, cells ...any) {
	s := make([]string, len(cells))
	for i, c := range cells {
		s[i] = fmt.Sprint(c)
	}
	fmt.Fprintln(w, strings.Join(s, "\t")+"\t")
}

func f0(v float64) string { return fmt.Sprintf("%.0f", v) }
func f2(v float64) string { return fmt.Sprintf("%.2f", v) }

// opt is v, or "-" for a figure that was not measured.
func opt(measured bool, v string) string {
	if !measured {
		return "-"
	}
	return v
}

// goFig is one figure of p, or "-" without the server's /metrics.
func goFig(p *perConn, fig func(perConn) float64) string {
	if p == nil {
		return "-"
	}
	return f2(fig(*p))
}
