package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
)

// Aims documented in the issue.
const (
	aimTaxRatio = 0.6
	aimPacedP99 = 20.0 // ms
)

// lagMeaning says exactly what the lag figures are.
const lagMeaning = "lag = time the reader's Deliver callback was entered with the batch holding the event " +
	"minus time the writer's autocommitted UPDATE returned (COMMIT acknowledged), both on this process's " +
	"monotonic clock; negative when the batch was handed over before the writer read the COMMIT reply. " +
	"commit rtt = UPDATE sent to COMMIT returned."

// report writes a JSON line per measurement as it is taken and keeps the
// results for the final table. JSON lines are the stdout lines starting
// with "{".
type report struct {
	w      io.Writer
	enc    *json.Encoder
	header []string
	taxes  []taxResult
	lags   []lagResult
	parts  []breakdownResult
}

func newReport(w io.Writer) *report {
	return &report{w: w, enc: json.NewEncoder(w)}
}

// emit writes one JSON line, with the 1-minute load average (the
// benchmark's own processes included): other work on the machine shows up
// in the figures.
func (r *report) emit(v map[string]any) {
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		if f := strings.Fields(string(b)); len(f) > 0 {
			v["loadavg_1m"], _ = strconv.ParseFloat(f[0], 64)
		}
	}
	_ = r.enc.Encode(v)
}

func (r *report) setup(cfg config, settings []setting, private bool) {
	server := "private cluster (store/localpg, temporary directory, removed at the end)"
	if !private {
		server = "scratch database on -database-url, dropped at the end"
	}
	line := map[string]any{"kind": "setup", "server": server, "runs": cfg.Runs, "writers": cfg.Writers,
		"phase_s": cfg.Duration.Seconds(), "rate": cfg.Rate, "rows": cfg.Rows}
	var kv []string
	for _, s := range settings {
		line[s.Name] = s.Value
		kv = append(kv, s.Name+"="+s.Value)
	}
	r.emit(line)
	r.header = []string{
		fmt.Sprintf("capturebench: %d runs, %d writers, %s phases, %d orders rows, paced rate %d/s", cfg.Runs, cfg.Writers, cfg.Duration, cfg.Rows, cfg.Rate),
		"server: " + server,
		"settings: " + strings.Join(kv, " "),
	}
}

func (r *report) tax(t taxResult) {
	r.taxes = append(r.taxes, t)
	base := t.Phases[baseline].TPS()
	for _, name := range t.Order {
		p := t.Phases[name]
		r.emit(map[string]any{"kind": "trigger_tax", "run": t.Run, "variant": name, "order": strings.Join(t.Order, ","),
			"tx": p.Tx, "tps": round1(p.TPS()), "ratio": round3(p.TPS() / base)})
	}
}

func (r *report) lag(l lagResult) {
	r.lags = append(r.lags, l)
	r.emit(map[string]any{"kind": "reader_lag", "mode": modeKey(l.Rate), "run": l.Run, "target_rate": l.Rate,
		"tx": l.Load.Tx, "tps": round1(l.Load.TPS()), "matched": l.Lag.N,
		"lag_p50_ms": round3(ms(l.Lag.P50)), "lag_p99_ms": round3(ms(l.Lag.P99)), "lag_max_ms": round3(ms(l.Lag.Max)),
		"commit_rtt_p50_ms": round3(ms(l.RTT.P50)), "commit_rtt_p99_ms": round3(ms(l.RTT.P99)),
		"early": l.Early, "missing": l.Missing, "foreign": l.Foreign, "batches": l.Batches, "events": l.Events})
}

func modeKey(rate int) string {
	switch rate {
	case 0:
		return "saturation"
	case idleRate:
		return "idle"
	}
	return "paced"
}

// final prints the summary JSON lines and the table.
// The tables are written after every JSON line, so that they stay in one
// piece.
func (r *report) final() {
	var out bytes.Buffer
	fmt.Fprintln(&out)
	for _, h := range r.header {
		fmt.Fprintln(&out, h)
	}
	r.taxTable(&out)
	r.lagTable(&out, "paced")
	r.lagTable(&out, "saturation")
	r.lagTable(&out, "idle")
	r.breakdownTable(&out)
	_, _ = r.w.Write(out.Bytes())
}

func newTable(out io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
}

func (r *report) taxTable(out io.Writer) {
	if len(r.taxes) == 0 {
		return
	}
	tw := newTable(out)
	fmt.Fprintf(out, "\nTrigger tax: single-row UPDATE tx/s on public.orders, each variant / %s (no reader running)\n", baseline)
	fmt.Fprintln(tw, "variant\ttx/s median\tmin–max\tratio median\tmin–max\twhat\t")
	for _, v := range taxVariants {
		var tps, ratio []float64
		for _, t := range r.taxes {
			tps = append(tps, t.Phases[v.Name].TPS())
			ratio = append(ratio, t.Phases[v.Name].TPS()/t.Phases[baseline].TPS())
		}
		st, sr := spreadOf(tps), spreadOf(ratio)
		fmt.Fprintf(tw, "%s\t%.0f\t%.0f–%.0f\t%.3f\t%.3f–%.3f\t%s\t\n", v.Name, st.Median, st.Min, st.Max, sr.Median, sr.Min, sr.Max, v.What)
		r.summary("trigger_tax."+v.Name+".tps", st, nil)
		if v.Name == "hub" {
			met := sr.Median >= aimTaxRatio
			r.summary("trigger_tax."+v.Name+".ratio", sr, &met)
			defer fmt.Fprintf(out, "aim: hub ratio >= %.2f: %s\n", aimTaxRatio, metText(met))
		} else if v.Name != baseline {
			r.summary("trigger_tax."+v.Name+".ratio", sr, nil)
		}
	}
	tw.Flush()
}

// lagTable prints the runs of one mode (modeKey).
func (r *report) lagTable(out io.Writer, mode string) {
	var rows []lagResult
	for _, l := range r.lags {
		if modeKey(l.Rate) == mode {
			rows = append(rows, l)
		}
	}
	if len(rows) == 0 {
		return
	}
	tw := newTable(out)
	fmt.Fprintf(out, "\nReader lag, %s: COMMIT returned in the writer -> batch handed to hub.Reader's Deliver\n", modeName(rows[0].Rate))
	fmt.Fprintln(tw, "run\ttx/s\tmatched\tp50 ms\tp99 ms\tmax ms\trtt p50 ms\trtt p99 ms\tearly\tmissing\tbatches\t")
	var tps, p50, p99, mx, rtt50, rtt99 []float64
	for _, l := range rows {
		tps, p50, p99, mx = append(tps, l.Load.TPS()), append(p50, ms(l.Lag.P50)), append(p99, ms(l.Lag.P99)), append(mx, ms(l.Lag.Max))
		rtt50, rtt99 = append(rtt50, ms(l.RTT.P50)), append(rtt99, ms(l.RTT.P99))
		fmt.Fprintf(tw, "%d\t%.0f\t%d\t%.2f\t%.2f\t%.2f\t%.2f\t%.2f\t%d\t%d\t%d\t\n", l.Run, l.Load.TPS(), l.Lag.N,
			ms(l.Lag.P50), ms(l.Lag.P99), ms(l.Lag.Max), ms(l.RTT.P50), ms(l.RTT.P99), l.Early, l.Missing, l.Batches)
	}
	s := []spread{spreadOf(tps), spreadOf(p50), spreadOf(p99), spreadOf(mx), spreadOf(rtt50), spreadOf(rtt99)}
	fmt.Fprintf(tw, "median\t%.0f\t\t%.2f\t%.2f\t%.2f\t%.2f\t%.2f\t\t\t\t\n", s[0].Median, s[1].Median, s[2].Median, s[3].Median, s[4].Median, s[5].Median)
	fmt.Fprintf(tw, "min–max\t%.0f–%.0f\t\t%.2f–%.2f\t%.2f–%.2f\t%.2f–%.2f\t%.2f–%.2f\t%.2f–%.2f\t\t\t\t\n",
		s[0].Min, s[0].Max, s[1].Min, s[1].Max, s[2].Min, s[2].Max, s[3].Min, s[3].Max, s[4].Min, s[4].Max, s[5].Min, s[5].Max)
	tw.Flush()
	fmt.Fprintln(out, lagMeaning)
	var met *bool
	if mode != "saturation" {
		ok := s[2].Median < aimPacedP99
		met = &ok
		fmt.Fprintf(out, "aim: p99 < %.0f ms (%s): %s\n", aimPacedP99, mode, metText(ok))
	}
	r.summary("reader_lag."+mode+".tps", s[0], nil)
	r.summary("reader_lag."+mode+".lag_p50_ms", s[1], nil)
	r.summary("reader_lag."+mode+".lag_p99_ms", s[2], met)
	r.summary("reader_lag."+mode+".lag_max_ms", s[3], nil)
	r.summary("reader_lag."+mode+".commit_rtt_p50_ms", s[4], nil)
	r.summary("reader_lag."+mode+".commit_rtt_p99_ms", s[5], nil)
}

func (r *report) summary(name string, s spread, aimMet *bool) {
	line := map[string]any{"kind": "summary", "measurement": name, "runs": len(r.taxes),
		"median": round3(s.Median), "min": round3(s.Min), "max": round3(s.Max)}
	if aimMet != nil {
		line["aim_met"] = *aimMet
	}
	r.emit(line)
}

func metText(ok bool) string {
	if ok {
		return "met (median)"
	}
	return "NOT met (median)"
}

func round1(x float64) float64 { return float64(int64(x*10+0.5)) / 10 }
func round3(x float64) float64 {
	if x < 0 {
		return -round3(-x)
	}
	return float64(int64(x*1000+0.5)) / 1000
}

func (r *report) variantRun(run int, v variant, tps float64) {
	r.emit(map[string]any{"kind": "trigger_variant", "run": run, "variant": v.Name, "tps": round1(tps)})
}

func (r *report) breakdown(results []breakdownResult) {
	r.parts = results
	for _, b := range results {
		s := spreadOf(b.TPS)
		r.emit(map[string]any{"kind": "summary", "measurement": "trigger_variant." + b.Variant.Name + ".tps", "runs": len(b.TPS),
			"median": round1(s.Median), "min": round1(s.Min), "max": round1(s.Max)})
		r.emit(map[string]any{"kind": "trigger_variant_explain", "variant": b.Variant.Name, "samples": b.TriggerTime.N,
			"trigger_p50_ms": round3(ms(b.TriggerTime.P50)), "trigger_p99_ms": round3(ms(b.TriggerTime.P99)),
			"update_exec_p50_ms": round3(ms(b.ExecTime.P50)), "update_exec_p99_ms": round3(ms(b.ExecTime.P99))})
	}
}

func (r *report) breakdownTable(out io.Writer) {
	if len(r.parts) == 0 {
		return
	}
	fmt.Fprintln(out, "\nTrigger cost breakdown: the capture trigger built up stage by stage (schema capturebench; migrations untouched)")
	fmt.Fprintln(out, "tx/s: all writers, median over the runs; us/tx = 1e6/(tx/s), the machine's wall time per transaction;")
	fmt.Fprintln(out, "trigger ms: EXPLAIN ANALYZE of single UPDATEs, each its own transaction (median of the trigger's own time)")
	tw := newTable(out)
	fmt.Fprintln(tw, "variant\ttx/s\tmin–max\tus/tx\t+us/tx vs prev\ttrigger ms\t+ms vs prev\tUPDATE ms\tadds\t")
	var prevUS, prevTrig float64
	for i, b := range r.parts {
		s := spreadOf(b.TPS)
		perTx := 1e6 / s.Median
		trig := ms(b.TriggerTime.P50)
		dUS, dTrig := "", ""
		if i > 0 {
			dUS, dTrig = fmt.Sprintf("%+.1f", perTx-prevUS), fmt.Sprintf("%+.3f", trig-prevTrig)
		}
		fmt.Fprintf(tw, "%s\t%.0f\t%.0f–%.0f\t%.1f\t%s\t%.3f\t%s\t%.3f\t%s\t\n", b.Variant.Name, s.Median, s.Min, s.Max,
			perTx, dUS, trig, dTrig, ms(b.ExecTime.P50), b.Variant.What)
		prevUS, prevTrig = perTx, trig
	}
	tw.Flush()
}
