// Command hub turns PostgreSQL row changes into realtime WebSocket
// broadcasts. `hub` (or `hub serve`) runs the service; `hub migrate
// up|down|version` manages the schema. Configuration comes from the
// environment (see config.go and `hub help`).
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
)

// defaultGCPercent replaces Go's default of 100 unless GOGC is set. The
// hub's heap is mostly the connections' long-lived state, so collecting at
// twice the live heap leaves idle connections a third more RSS than their
// state. At 1.5 times, saturated fan-out cost no measurable CPU more, and
// W2 about 5 % per delivery (README, "Performance").
const defaultGCPercent = 50

func main() {
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(defaultGCPercent)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "hub:", err)
		os.Exit(1)
	}
}
