package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync"
	"text/tabwriter"
)

// report writes a JSON line per run as it ends and, at the end, a table.
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

// final prints the table of the runs measured.
func (r *report) final() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.runs) == 0 {
		return
	}
	fmt.Fprintf(r.w, "\nhubload %s: %d clients, %s, %d tenants, %d UPDATE/s for %s, %d writers\n",
		r.cfg.Workload, r.cfg.Clients, r.cfg.channel(), r.cfg.Tenants, r.cfg.Rate, r.cfg.Duration, r.cfg.Writers)
	tw := tabwriter.NewWriter(r.w, 0, 0, 2, ' ', tabwriter.AlignRight)
	if r.cfg.idle() {
		r.idleTable(tw)
	} else {
		r.writeTable(tw)
	}
	tw.Flush()
	for _, res := range r.runs {
		if len(res.Dropped) > 0 {
			fmt.Fprintf(r.w, "run %d: connections ended by the hub: %v\n", res.Run, res.Dropped)
		}
	}
}

func (r *report) writeTable(tw io.Writer) {
	row(tw, "run", "conn", "commit/s", "asked/s", "deliv/s", "deliv%", "lost", "extra", "disorder", "x-tenant",
		"p50 ms", "p90 ms", "p99 ms", "max ms", "drain s", "hub µs/deliv", "hub cpu%", "busy%", "pg cpu%", "tool cpu%", "other cpu%", "load1", "rss/conn KiB")
	for _, res := range r.runs {
		l := res.Latency
		row(tw, res.Run, res.Connected, f0(res.CommitPerS), f0(res.AskedPerS), f0(res.DeliveryPerS), f2(res.DeliveredPct),
			res.Lost, res.Extra, res.Disorder, res.CrossTenant,
			opt(res.measuredLatency, f2(l.P50)), opt(res.measuredLatency, f2(l.P90)), opt(res.measuredLatency, f2(l.P99)),
			opt(res.measuredLatency, f2(l.Max)), f2(res.DrainS),
			opt(res.measuredHubCPU, f2(res.HubCPUPerDelUS)), opt(res.measuredHubCPU, f0(res.HubCPUPct)),
			f0(res.MachineBusyPct), opt(res.PGCPUPct != 0, f0(res.PGCPUPct)), f0(res.ToolCPUPct), f0(res.OtherCPUPct), f2(res.LoadAvg1), opt(res.measuredHubRSS, f2(res.RSSPerConnKB)))
	}
}

func (r *report) idleTable(tw io.Writer) {
	row(tw, "run", "clients", "connected", "failed", "held", "connect s", "hub rss before KiB", "hub rss after KiB",
		"rss/conn KiB", "goroutines/conn", "stack/conn KiB", "heap/conn KiB", "hub cpu% idle", "busy%", "load1")
	for _, res := range r.runs {
		row(tw, res.Run, res.Clients, res.Connected, res.ConnectFailed, res.Held, f2(res.ConnectS),
			opt(res.measuredHubRSS, fmt.Sprint(res.HubRSSBeforeKB)), opt(res.measuredHubRSS, fmt.Sprint(res.HubRSSAfterKB)),
			opt(res.measuredHubRSS, f2(res.RSSPerConnKB)), goFig(res.GoPerConn, func(p perConn) float64 { return p.Goroutines }),
			goFig(res.GoPerConn, func(p perConn) float64 { return p.StackKiB }),
			goFig(res.GoPerConn, func(p perConn) float64 { return p.HeapKiB }), opt(res.measuredHubCPU, f2(res.HubCPUPct)), f0(res.MachineBusyPct), f2(res.LoadAvg1))
	}
}

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

// goFig is one figure of p, or "-" without the hub's /metrics.
func goFig(p *perConn, fig func(perConn) float64) string {
	if p == nil {
		return "-"
	}
	return f2(fig(*p))
}
