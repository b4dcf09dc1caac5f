// Command hubload measures the hub end to end: it creates its clients and
// keys through the admin API (SPEC §8), opens N protocol A WebSocket
// clients (SPEC §4) on loopback, spread over several source addresses of
// 127.0.0.0/8, drives R single-row UPDATEs per second through SQL from a
// pool of writers, and reports per run:
//
//   - deliveries per second achieved during the write phase, against the
//     N x R asked (or the tenant-filtered expectation);
//   - lost deliveries after a drain: per client, the committed events it
//     may see (read back from hub.events) minus those it received;
//   - commit-to-receive latency p50/p90/p99/max: the writer stamps the row
//     with clock_timestamp() (scores.updated_at, orders.matched_at) and the
//     client subtracts it from its receive time (one machine, one clock);
//   - cross-tenant deliveries, duplicates and out-of-order frames;
//   - the hub's CPU per delivery and RSS per connection, from /proc.
//
// Workloads (-workload; every preset can be changed by the other flags):
//
//	w1     1000 clients on the global channel scores, 100 UPDATE/s, 30s
//	w1sat  1000 clients on scores, 1000 UPDATE/s, 15s
//	w2     5000 clients of 100 tenants on orders, 1000 UPDATE/s, 30s
//	w3     5000 idle subscribed clients held 10s: RSS per connection
//
// Without -url it builds the hub, starts it on a private PostgreSQL
// cluster (fsync=off, synchronous_commit=off, HUB_DEMO=false) in a
// temporary directory, and removes both at the end; with -url it uses a
// running hub (-admin-token, -database-url; -server-pid for the CPU and
// RSS figures; run that hub with HUB_DEMO=false). Progress goes to stderr;
// stdout gets one JSON line per run and, at the end, a table. Ctrl-C stops
// at once and prints what was measured.
//
//	go run ./cmd/hubload -workload w1 [-runs 3] [-clients 1000] [-rate 100] [-duration 30s]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "hubload:", err)
		os.Exit(1)
	}
}

// run parses args, finds or starts the hub, runs the workload and reports.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := parseConfig(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil // the usage has been printed
	}
	if err != nil {
		return err
	}
	target, err := openTarget(ctx, cfg, stderr)
	if err != nil {
		return err
	}
	defer target.close(stderr)
	out := newReport(stdout, cfg)
	l := &load{cfg: cfg, target: target, out: out, log: stderr}
	err = l.run(ctx)
	out.final()
	if err != nil && ctx.Err() != nil {
		return errors.New("interrupted")
	}
	return err
}
