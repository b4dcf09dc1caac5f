package main

import (
	"bufio"
	"context"
	"net/http"
	"strconv"
	"strings"
)

// goMetrics are a server's Go runtime figures from GET /metrics (the hub's,
// SPEC §8; Centrifugo's with "prometheus" on), to split its memory per
// connection into stacks and heap.
type goMetrics struct {
	Goroutines float64
	StackBytes float64 // go_memstats_stack_inuse_bytes
	HeapBytes  float64 // go_memstats_heap_inuse_bytes
}

// scrapeGoMetrics reads the server's /metrics; ok is false when it has
// none.
func scrapeGoMetrics(ctx context.Context, baseURL string) (m goMetrics, ok bool) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, baseURL+"/metrics", nil)
	if err != nil {
		return m, false
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return m, false
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return m, false
	}
	want := map[string]*float64{
		"go_goroutines":                 &m.Goroutines,
		"go_memstats_stack_inuse_bytes": &m.StackBytes,
		"go_memstats_heap_inuse_bytes":  &m.HeapBytes,
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	found := 0
	for sc.Scan() {
		name, value, cut := strings.Cut(sc.Text(), " ")
		if p := want[name]; cut && p != nil {
			if v, err := strconv.ParseFloat(strings.TrimSpace(value), 64); err == nil {
				*p = v
				found++
			}
		}
	}
	return m, found == len(want)
}

// perConn is the growth of the server's Go figures from before to after the
// connections, divided by their number.
type perConn struct {
	Goroutines float64 `json:"goroutines"`
	StackKiB   float64 `json:"stackKiB"`
	HeapKiB    float64 `json:"heapKiB"`
}

func perConnection(before, after goMetrics, conns int) perConn {
	n := float64(conns)
	return perConn{
		Goroutines: (after.Goroutines - before.Goroutines) / n,
		StackKiB:   (after.StackBytes - before.StackBytes) / 1024 / n,
		HeapKiB:    (after.HeapBytes - before.HeapBytes) / 1024 / n,
	}
}
