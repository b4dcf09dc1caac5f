package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"time"
)

// config holds the command line; every field states its default.
type config struct {
	// DatabaseURL names a server to create a scratch database on; "" (the
	// default) starts a private cluster.
	DatabaseURL string
	// Runs is how many times every measurement is repeated (default 3).
	Runs int
	// Duration is the length of one phase (default 5s).
	Duration time.Duration
	// Warmup is an unmeasured attached phase before the first run (default 2s).
	Warmup time.Duration
	// Writers is the number of writer connections (default 8).
	Writers int
	// Rate is the paced mode's total transactions per second (default 1000).
	Rate int
	// Rows is how many orders rows are updated at random (default 10000).
	Rows int
	// Breakdown adds a phase per stage of the capture trigger, splitting its
	// cost into its parts (default off).
	Breakdown bool
	// Durable starts the private cluster with PostgreSQL's own fsync and
	// synchronous_commit (on) instead of off (default off).
	Durable bool
	// Drain bounds the wait for the reader to hand over the last events of
	// a lag phase (default 10s).
	Drain time.Duration
	// IdleSamples is how many single changes the idle phase writes, each
	// after IdleGap of silence (default 0: no idle phase; IdleGap 10s).
	IdleSamples int
	IdleGap     time.Duration
	// Doorbell gives the lag phases' reader a doorbell of its own, which it
	// disarms under steady writes (default true); false keeps every
	// transaction ringing, as before the adaptive doorbell, to compare.
	Doorbell bool
}

func parseConfig(args []string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("capturebench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.DatabaseURL, "database-url", "", "PostgreSQL server to create a scratch database on (default: a private cluster with fsync=off, synchronous_commit=off)")
	fs.IntVar(&c.Runs, "runs", 3, "repetitions of every measurement")
	fs.DurationVar(&c.Duration, "duration", 5*time.Second, "length of one phase")
	fs.DurationVar(&c.Warmup, "warmup", 2*time.Second, "unmeasured attached phase before the first run (0: none)")
	fs.IntVar(&c.Writers, "writers", 8, "writer connections")
	fs.IntVar(&c.Rate, "rate", 1000, "paced mode: single-row transactions per second across all writers")
	fs.IntVar(&c.Rows, "rows", 10000, "orders rows to pre-populate and update at random")
	fs.BoolVar(&c.Breakdown, "breakdown", false, "also split the trigger's cost into its parts (trigger stages)")
	fs.BoolVar(&c.Durable, "durable", false, "private cluster: keep fsync and synchronous_commit on (PostgreSQL's defaults)")
	fs.DurationVar(&c.Drain, "drain", 10*time.Second, "longest wait for the reader to catch up at the end of a lag phase")
	fs.IntVar(&c.IdleSamples, "idle-samples", 0, "idle phase: single changes, each after -idle-gap of silence (0: no idle phase)")
	fs.DurationVar(&c.IdleGap, "idle-gap", 10*time.Second, "idle phase: the silence before each change")
	fs.BoolVar(&c.Doorbell, "doorbell", true, "lag phases: the reader disarms its doorbell under steady writes; false: every transaction rings, as before")
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	if fs.NArg() > 0 {
		return config{}, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	return c, c.validate()
}

func (c config) validate() error {
	var errs []error
	if c.Runs < 1 {
		errs = append(errs, errors.New("-runs: must be at least 1"))
	}
	if c.Duration < 100*time.Millisecond {
		errs = append(errs, errors.New("-duration: must be at least 100ms"))
	}
	if c.Warmup < 0 {
		errs = append(errs, errors.New("-warmup: must not be negative"))
	}
	if c.Writers < 1 {
		errs = append(errs, errors.New("-writers: must be at least 1"))
	}
	if c.Rate < 1 {
		errs = append(errs, errors.New("-rate: must be at least 1"))
	}
	if c.Rows < 1 {
		errs = append(errs, errors.New("-rows: must be at least 1"))
	}
	if c.Durable && c.DatabaseURL != "" {
		errs = append(errs, errors.New("-durable: only for the private cluster; -database-url's server keeps its own settings"))
	}
	if c.IdleSamples < 0 || c.IdleGap <= 0 {
		errs = append(errs, errors.New("-idle-samples: must not be negative; -idle-gap: must be positive"))
	}
	if c.Drain <= 0 {
		errs = append(errs, errors.New("-drain: must be positive"))
	}
	return errors.Join(errs...)
}
