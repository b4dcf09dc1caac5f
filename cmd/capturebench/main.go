// Command capturebench measures what capture costs the writers and how late
// the reader hands changes over:
//
//   - the trigger tax: single-row UPDATE transactions per second on
//     public.orders with each capture variant, divided by those with no
//     trigger, the variants rotated from run to run in one invocation: the
//     hub's capture with its doorbell disarmed (a node reading back to
//     back, SPEC §2.2), the same with every transaction ringing (an idle
//     node), and Centrifugo v5's PostgreSQL outbox trigger
//     (cmd/internal/centrifugo) as the peer (aim: at least 0.6);
//   - the reader's lag: from the writer's COMMIT returning to hub.Reader
//     (with a doorbell of its own) handing the event to its Deliver
//     callback, at a paced rate (aim: p99 under 20 ms at 1000 tx/s), at
//     saturation, and with -idle-samples, for single changes after
//     -idle-gap of silence (aim: p99 under 20 ms after 10 s).
//
// Without -database-url it starts a private PostgreSQL cluster (fsync=off,
// synchronous_commit=off) in a temporary directory and removes it at the
// end (-durable keeps both on); with -database-url it creates a scratch
// database on that server, migrates it, and drops it at the end. Progress
// goes to stderr; stdout gets one JSON line per measurement (the lines
// starting with "{") and, at the end, the tables with the median and the
// min–max over the runs. -breakdown adds phases that split the trigger's
// cost into its parts. Ctrl-C stops at once and prints what was measured.
//
//	go run ./cmd/capturebench [-runs 3] [-duration 5s] [-writers 8] [-rate 1000] [-durable] [-idle-samples 12] [-breakdown]
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
		fmt.Fprintln(os.Stderr, "capturebench:", err)
		os.Exit(1)
	}
}

// run parses args, sets up the database, runs the benchmark and reports.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := parseConfig(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil // the usage has been printed
	}
	if err != nil {
		return err
	}
	db, err := openDatabase(ctx, cfg, stderr)
	if err != nil {
		return err
	}
	defer db.close(stderr)
	b := &bench{cfg: cfg, db: db, out: newReport(stdout), log: stderr}
	if err := b.run(ctx); err != nil {
		if ctx.Err() == nil {
			return err
		}
		b.out.final() // what was measured before the interrupt
		return errors.New("interrupted")
	}
	return nil
}
