// Command soak runs the hub for a long time under a steady write rate with
// protocol A clients that come, resume with since and leave at random, then
// reports whether every client got every event it should exactly once, in
// position order, and how the hub's memory, goroutines and file
// descriptors moved between start and end.
//
// By default it starts everything itself: a private PostgreSQL cluster
// (store/localpg) and the hub binary built from ./server as a child process
// (the hub's wiring is package main, so it runs as the binary a user would
// deploy). With -url and -database-url it soaks a hub that is already
// running instead.
//
//	go run ./cmd/soak -duration 1h
//	go run ./cmd/soak -url http://127.0.0.1:8080 -database-url postgres://… -duration 10m
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// config is the soak's flags.
type config struct {
	duration    time.Duration
	rate        float64 // events per second, all tenants together
	clients     int     // logical clients connected at once
	tenants     int
	writers     int // concurrent writer transactions
	url         string
	databaseURL string
	hubBin      string
	drain       time.Duration
}

func main() {
	var c config
	flag.DurationVar(&c.duration, "duration", 10*time.Minute, "how long to write and churn clients")
	flag.Float64Var(&c.rate, "rate", 100, "events written per second")
	flag.IntVar(&c.clients, "clients", 30, "clients connected at once")
	flag.IntVar(&c.tenants, "tenants", 4, "tenants (hub clients) the writes and keys are spread over")
	flag.IntVar(&c.writers, "writers", 3, "concurrent writer transactions (they commit out of xid order)")
	flag.StringVar(&c.url, "url", "", "base URL of a running hub (http://host:port); empty: start one")
	flag.StringVar(&c.databaseURL, "database-url", "", "the hub's database; required with -url; empty: a private cluster")
	flag.StringVar(&c.hubBin, "hub-bin", "", "hub binary to start; empty: go build ./server")
	flag.DurationVar(&c.drain, "drain", time.Minute, "how long connected clients may take to reach the last event at the end")
	flag.Parse()
	if c.url != "" && c.databaseURL == "" {
		fmt.Fprintln(os.Stderr, "soak: -url needs -database-url (the soak writes rows and creates keys)")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := soak(ctx, c)
	if rep != nil {
		rep.print(os.Stdout)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		os.Exit(1)
	}
	if !rep.ok() {
		os.Exit(1)
	}
}
