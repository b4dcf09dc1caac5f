package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/jackc/pgx/v5"
)

// load runs the workload's runs against the target; one goroutine uses it.
type load struct {
	cfg    config
	target *target
	out    *report
	log    io.Writer

	ctl     *pgx.Conn // control connection: rows, triggers, the ledgers
	writers *writers  // nil when idle
	tenants []string  // client i's tenant; nil on a global channel
}

func (l *load) run(ctx context.Context) error {
	ctl, err := pgx.Connect(ctx, l.target.databaseURL)
	if err != nil {
		return fmt.Errorf("connect to the database: %w", err)
	}
	l.ctl = ctl
	defer ctl.Close(context.Background())
	if l.cfg.Tenants > 0 {
		for i := range l.cfg.Clients {
			l.tenants = append(l.tenants, l.cfg.tenantOf(i))
		}
	}
	if !l.cfg.idle() {
		if err := prepareRows(ctx, ctl, l.cfg); err != nil {
			return err
		}
		if l.writers, err = openWriters(ctx, l.target.databaseURL, l.cfg); err != nil {
			return err
		}
		defer l.writers.close()
	}
	for run := 1; run <= l.cfg.Runs; run++ {
		for _, s := range l.order(run) {
			res, err := l.once(ctx, s, run)
			if err != nil {
				return err
			}
			l.out.add(res)
		}
	}
	return nil
}

// order is the servers of run (pair) n: Centrifugo first in odd pairs, the
// hub first in even ones (C H, H C, C H, …), so that each server runs as
// often first as second and drift of the machine touches both alike.
func (l *load) order(n int) []server {
	s := l.target.servers
	if len(s) != 2 {
		return s
	}
	cf, hub := s[0], s[1]
	if cf.name() != centrifugoName {
		cf, hub = hub, cf
	}
	if n%2 == 1 {
		return []server{cf, hub}
	}
	return []server{hub, cf}
}

// once is one run of s: switch the triggers to s, connect, measure the
// idle connections, write, drain, count.
func (l *load) once(ctx context.Context, s server, run int) (result, error) {
	res := newResult(l.cfg, s.name(), run)
	if err := l.target.activate(ctx, l.ctl, l.cfg.table(), s); err != nil {
		return res, err
	}
	if l.cfg.idle() && l.target.private {
		// A process that held connections before keeps heap it has not
		// returned to the system yet: the RSS per connection of an idle
		// run is taken on a fresh one.
		l.progress("run %d: restarting %s", run, s.name())
		if err := s.restart(ctx); err != nil {
			return res, err
		}
	}
	led, err := s.openLedger(ctx, l.ctl)
	if err != nil {
		return res, err
	}
	start := time.Now()
	rss0 := l.serverRSS(s)
	go0, goOK := scrapeGoMetrics(ctx, s.baseURL())
	l.progress("run %d: connecting %d clients to %s on %s", run, l.cfg.Clients, s.name(), l.cfg.channel())
	f, err := dialFleet(ctx, fleetParams{Server: s, Clients: l.cfg.Clients, Tenants: l.tenants,
		Decode: s.decoder(l.cfg.channel(), l.cfg.Scan), Start: start,
		SourceAddrs: l.cfg.SourceAddrs, Concurrency: l.cfg.DialConcurrency, Log: l.log})
	if err != nil {
		return res, err
	}
	defer f.close()
	res.Connected, res.ConnectFailed, res.ConnectS = f.connected(), l.cfg.Clients-f.connected(), time.Since(start).Seconds()
	l.progress("run %d: %d connected in %.1fs", run, res.Connected, res.ConnectS)
	if err := sleepUntil(ctx, time.Now().Add(l.cfg.Settle)); err != nil {
		return res, err
	}
	res.setRSS(rss0, l.serverRSS(s))
	if go1, ok := scrapeGoMetrics(ctx, s.baseURL()); goOK && ok && res.Connected > 0 {
		pc := perConnection(go0, go1, res.Connected)
		res.GoPerConn = &pc
	}
	if l.cfg.idle() {
		return l.hold(ctx, s, f, res)
	}
	return l.write(ctx, s, f, led, res)
}

// hold keeps the connections idle for the duration (w3).
func (l *load) hold(ctx context.Context, s server, f *fleet, res result) (result, error) {
	l.progress("run %d: holding %d idle connections for %s", res.Run, res.Connected, l.cfg.Duration)
	m0 := markCPU(s.pid(), l.target.pgPID)
	if err := sleepUntil(ctx, time.Now().Add(l.cfg.Duration)); err != nil {
		return res, err
	}
	res.setCPU(m0, markCPU(s.pid(), l.target.pgPID), 0)
	res.Dropped = f.dropped()
	res.Held = f.connected() - sumValues(res.Dropped)
	return res, nil
}

// write runs the write phase and the drain, then counts.
func (l *load) write(ctx context.Context, s server, f *fleet, led ledger, res result) (result, error) {
	l.progress("run %d: writing %d UPDATE/s for %s", res.Run, l.cfg.Rate, l.cfg.Duration)
	recv0, m0 := f.received(), markCPU(s.pid(), l.target.pgPID)
	wr, err := l.writers.run(ctx, l.cfg.Rate, l.cfg.Duration)
	if err != nil {
		return res, err
	}
	res.setWrites(wr, f.received()-recv0)
	counts, err := led.committed(ctx, wr)
	if err != nil {
		return res, err
	}
	drained, complete, err := l.drain(ctx, f, recv0+expected(f, counts))
	if err != nil {
		return res, err
	}
	res.DrainS, res.DrainIncomplete = drained.Seconds(), !complete
	res.setCPU(m0, markCPU(s.pid(), l.target.pgPID), f.received()-recv0)
	res.setDeliveries(f, counts)
	res.Dropped = f.dropped()
	return res, led.settle(ctx, &res)
}

// expected sums what every client should receive of the counted events.
func expected(f *fleet, counts map[string]uint64) uint64 {
	var n uint64
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.clients {
		n += counts[c.tenant]
	}
	return n
}

// drain waits until the clients have received want publications in all,
// nothing arrived for -quiet, or -drain passed. It returns the time from
// the call to the last delivery seen, and whether all arrived.
func (l *load) drain(ctx context.Context, f *fleet, want uint64) (time.Duration, bool, error) {
	start := time.Now()
	last, prev := start, f.received()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for prev < want {
		select {
		case <-ctx.Done():
			return 0, false, ctx.Err()
		case now := <-tick.C:
			if n := f.received(); n != prev {
				prev, last = n, now
			}
			if now.Sub(last) >= l.cfg.Quiet || now.Sub(start) >= l.cfg.Drain {
				l.progress("drain ended with %d of %d delivered", prev, want)
				return last.Sub(start), false, nil
			}
		}
	}
	return last.Sub(start), true, nil
}

func (l *load) serverRSS(s server) int64 {
	if s.pid() == 0 {
		return 0
	}
	kb, err := procRSS(s.pid())
	if err != nil {
		l.progress("%s RSS: %v", s.name(), err)
	}
	return kb
}

func (l *load) progress(format string, args ...any) {
	fmt.Fprintf(l.log, format+"\n", args...)
}

func sumValues(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}
