package main

import (
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"
)

// report is the soak's outcome.
type report struct {
	cfg                config
	hubURL, hubLog     string
	setup, duration    time.Duration
	start, end         hubMetrics
	endErr             error
	soakStart, soakEnd int
	events             int64
	written            int64
	sessions, resumes  int64
	dialFails          int64
	closes             map[int]int64
	clients, failed    int
	received, expected int64
	problems           []string
	interrupted        bool
}

func (rep *report) fill(r *soakRun) {
	rep.written = r.written.Load()
	rep.sessions, rep.resumes, rep.dialFails = r.sessions.Load(), r.resumes.Load(), r.dialFails.Load()
	rep.closes = map[int]int64{}
	r.closes.Range(func(k, v any) bool {
		rep.closes[k.(int)] = v.(interface{ Load() int64 }).Load()
		return true
	})
	r.mu.Lock()
	defer r.mu.Unlock()
	rep.clients = len(r.results)
	for _, res := range r.results {
		rep.received += int64(res.received)
		rep.expected += int64(res.expected)
		if res.problem != "" {
			rep.failed++
			if len(rep.problems) < 20 {
				rep.problems = append(rep.problems, res.tenant+": "+res.problem)
			}
		}
	}
}

func (rep *report) ok() bool { return rep.failed == 0 && rep.clients > 0 && !rep.interrupted }

func (rep *report) print(w io.Writer) {
	mb := func(v float64) string { return fmt.Sprintf("%.1f MiB", v/(1<<20)) }
	fmt.Fprintf(w, "soak report\n")
	fmt.Fprintf(w, "  hub:                 %s (log: %s)\n", rep.hubURL, orNone(rep.hubLog))
	fmt.Fprintf(w, "  settings:            rate %.0f/s, %d clients at once, %d tenants, %d writers\n", rep.cfg.rate, rep.cfg.clients, rep.cfg.tenants, rep.cfg.writers)
	fmt.Fprintf(w, "  duration:            %s (setup %s)\n", rep.duration.Round(time.Second), rep.setup.Round(time.Millisecond))
	fmt.Fprintf(w, "  events:              %d in the log (%d rows written, %.1f/s)\n", rep.events, rep.written, float64(rep.events)/rep.duration.Seconds())
	fmt.Fprintf(w, "  clients:             %d logical clients, %d connections, %d resumes with since, %d failed dials\n", rep.clients, rep.sessions, rep.resumes, rep.dialFails)
	codes := make([]int, 0, len(rep.closes))
	for c := range rep.closes {
		codes = append(codes, c)
	}
	sort.Ints(codes)
	for _, c := range codes {
		fmt.Fprintf(w, "  server closes %d:    %d\n", c, rep.closes[c])
	}
	fmt.Fprintf(w, "  deliveries checked:  %d received, %d expected from the log\n", rep.received, rep.expected)
	fmt.Fprintf(w, "  hub RSS:             %s -> %s\n", mb(rep.start.RSS), mb(rep.end.RSS))
	fmt.Fprintf(w, "  hub goroutines:      %.0f -> %.0f\n", rep.start.Goroutines, rep.end.Goroutines)
	fmt.Fprintf(w, "  hub open fds:        %.0f -> %.0f\n", rep.start.FDs, rep.end.FDs)
	fmt.Fprintf(w, "  hub connections:     %.0f -> %.0f\n", rep.start.Connections, rep.end.Connections)
	if rep.hubLog != "" {
		if b, err := os.ReadFile(rep.hubLog); err == nil {
			fmt.Fprintf(w, "  hub log:             %d WARN, %d ERROR lines\n",
				strings.Count(string(b), "level=WARN"), strings.Count(string(b), "level=ERROR"))
		}
	}
	if rep.endErr != nil {
		fmt.Fprintf(w, "  end scrape error:    %v\n", rep.endErr)
	}
	fmt.Fprintf(w, "  soak goroutines:     %d -> %d\n", rep.soakStart, rep.soakEnd)
	verdict := "every client got every event it should exactly once, in order"
	switch {
	case rep.interrupted:
		verdict = "interrupted before the end"
	case rep.clients == 0:
		verdict = "no client finished"
	case rep.failed > 0:
		verdict = fmt.Sprintf("%d of %d clients FAILED", rep.failed, rep.clients)
	}
	fmt.Fprintf(w, "  verdict:             %s\n", verdict)
	for _, p := range rep.problems {
		fmt.Fprintf(w, "    %s\n", p)
	}
}

func orNone(s string) string {
	if s == "" {
		return "not started here"
	}
	return s
}
