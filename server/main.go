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
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "hub:", err)
		os.Exit(1)
	}
}
