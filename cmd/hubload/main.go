// Command hubload measures the hub end to end, side by side with
// Centrifugo (centrifugo.Version, built at run time): it opens N WebSocket
// clients on loopback, spread over several source addresses of
// 127.0.0.0/8, drives R single-row UPDATEs per second through SQL from a
// pool of writers, and reports per run:
//
//   - deliveries per second achieved during the write phase, against the
//     N x R asked (or the tenant-filtered expectation);
//   - lost deliveries after a drain: per client, what it should have
//     received minus what it did; extra, duplicate/out-of-order (each
//     row's counter must rise) and cross-tenant publications;
//   - latency p50/p90/p99/max: the writer reads its clock just before it
//     sends the UPDATE and passes it as the row's stamp
//     (scores.updated_at, orders.matched_at); the client subtracts it from
//     its receive time (one machine, one clock);
//   - the server's CPU per delivery and RSS per connection, from /proc.
//
// Both servers run on the same private PostgreSQL cluster and get the same
// rows. The hub's clients speak protocol A (SPEC §4) with keys made through
// the admin API (SPEC §8), and what they should receive is counted in
// hub.events. Centrifugo reads its outbox with its PostgreSQL consumer,
// fed by a trigger of its own (cmd/internal/centrifugo); its clients
// connect with an HS256 token and subscribe to "scores" or to their
// tenant's channel "orders:#<tenant>", and what they should receive is the
// writers' count of committed UPDATEs. During a server's run only its
// trigger is enabled on the table. With both servers (-servers, the
// default) the runs alternate in pairs, C H, H C, C H, …, and the report
// ends with each pair's hub/centrifugo ratios and their median and range.
// The clients decode every frame fully as JSON; -decode scan reads only
// the fields measured.
//
// Workloads (-workload; every preset can be changed by the other flags):
//
//	w1     1000 clients on the global channel scores, 100 UPDATE/s, 30s
//	w1sat  1000 clients on scores, 1000 UPDATE/s, 15s
//	w2     5000 clients of 100 tenants on orders, 1000 UPDATE/s, 30s
//	w3     5000 idle subscribed clients held 10s: RSS per connection
//
// Without -url it builds the hub and Centrifugo, starts them on a private
// PostgreSQL cluster (fsync=off, synchronous_commit=off, HUB_DEMO=false)
// in a temporary directory, and removes the directory at the end; with
// -url it measures a running hub alone (-admin-token, -database-url;
// -server-pid for the CPU and RSS figures; run that hub with
// HUB_DEMO=false). Progress goes to stderr; stdout gets one JSON line per
// run and, at the end, the tables. Ctrl-C stops at once and prints what
// was measured.
//
//	go run ./cmd/hubload -workload w1 [-runs 3] [-servers hub,centrifugo] [-decode json] [-clients 1000] [-rate 100] [-duration 30s]
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

// run parses args, finds or starts the servers, runs the workload and
// reports.
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
	if cfg.Workload == "snapshot" {
		err := runSnapshotLoad(ctx, cfg, target, stdout, stderr)
		if err != nil && ctx.Err() != nil {
			return errors.New("interrupted")
		}
		return err
	}
	out := newReport(stdout, cfg)
	l := &load{cfg: cfg, target: target, out: out, log: stderr}
	err = l.run(ctx)
	out.final()
	if err != nil && ctx.Err() != nil {
		return errors.New("interrupted")
	}
	return err
}
