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

	admin   *admin
	ctl     *pgx.Conn // control connection: rows, the log's counts
	writers *writers  // nil when idle
	keys    []string  // client i's API key
	tenants []string  // client i's tenant; nil on a global channel
	keyIDs  []int64   // to revoke at the end
}

func (l *load) run(ctx context.Context) error {
	l.admin = newAdmin(l.target.url, l.target.adminToken)
	ctl, err := pgx.Connect(ctx, l.target.databaseURL)
	if err != nil {
		return fmt.Errorf("connect to the hub's database: %w", err)
	}
	l.ctl = ctl
	defer ctl.Close(context.Background())
	defer l.revokeKeys()
	if err := l.createKeys(ctx); err != nil {
		return err
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
		res, err := l.once(ctx, run)
		if err != nil {
			return err
		}
		l.out.add(res)
	}
	return nil
}

// createKeys creates the hub clients and their keys: one key per
// -conns-per-key clients of each.
func (l *load) createKeys(ctx context.Context) error {
	names := []string{globalClient}
	if l.cfg.Tenants > 0 {
		names = names[:0]
		for i := range l.cfg.Tenants {
			names = append(names, tenantName(i))
		}
	}
	l.progress("creating %d hub client(s) and their keys through the admin API", len(names))
	byName := map[string][]string{}
	for _, name := range names {
		if err := l.admin.clientCreate(ctx, name); err != nil {
			return err
		}
		share := (l.cfg.Clients + len(names) - 1) / len(names)
		for range (share + l.cfg.ConnsPerKey - 1) / l.cfg.ConnsPerKey {
			k, err := l.admin.keyCreate(ctx, name, maxKeyConnections)
			if err != nil {
				return err
			}
			l.keyIDs = append(l.keyIDs, k.ID)
			byName[name] = append(byName[name], k.Key)
		}
	}
	for i := range l.cfg.Clients {
		name := names[i%len(names)]
		keys := byName[name]
		l.keys = append(l.keys, keys[(i/len(names))/l.cfg.ConnsPerKey%len(keys)])
		if l.cfg.Tenants > 0 {
			l.tenants = append(l.tenants, name)
		}
	}
	return nil
}

// revokeKeys revokes the run's keys; it runs after ctx may have ended.
func (l *load) revokeKeys() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, id := range l.keyIDs {
		if err := l.admin.keyRevoke(ctx, id); err != nil {
			l.progress("revoke key %d: %v", id, err)
			return
		}
	}
}

// once is one run: connect, measure the idle connections, write, drain,
// count.
func (l *load) once(ctx context.Context, run int) (result, error) {
	res := newResult(l.cfg, run)
	baseline, err := lastEventID(ctx, l.ctl)
	if err != nil {
		return res, err
	}
	rss0 := l.hubRSS()
	go0, goOK := scrapeGoMetrics(ctx, l.target.url)
	l.progress("run %d: connecting %d clients to %s", run, l.cfg.Clients, l.cfg.channel())
	t0 := time.Now()
	f, err := dialFleet(ctx, fleetParams{URL: l.target.url, Keys: l.keys, Tenants: l.tenants,
		Channel: l.cfg.channel(), After: uint64(baseline), SourceAddrs: l.cfg.SourceAddrs, Concurrency: l.cfg.DialConcurrency, Log: l.log})
	if err != nil {
		return res, err
	}
	defer f.close()
	res.Connected, res.ConnectFailed, res.ConnectS = f.connected(), l.cfg.Clients-f.connected(), time.Since(t0).Seconds()
	l.progress("run %d: %d connected in %.1fs", run, res.Connected, res.ConnectS)
	if err := sleepUntil(ctx, time.Now().Add(l.cfg.Settle)); err != nil {
		return res, err
	}
	res.setRSS(rss0, l.hubRSS())
	if go1, ok := scrapeGoMetrics(ctx, l.target.url); goOK && ok && res.Connected > 0 {
		pc := perConnection(go0, go1, res.Connected)
		res.GoPerConn = &pc
	}
	if l.cfg.idle() {
		return l.hold(ctx, f, res)
	}
	return l.write(ctx, f, res, baseline)
}

// hold keeps the connections idle for the duration (w3).
func (l *load) hold(ctx context.Context, f *fleet, res result) (result, error) {
	l.progress("run %d: holding %d idle connections for %s", res.Run, res.Connected, l.cfg.Duration)
	m0 := markCPU(l.target.pid, l.target.pgPID)
	if err := sleepUntil(ctx, time.Now().Add(l.cfg.Duration)); err != nil {
		return res, err
	}
	res.setCPU(m0, markCPU(l.target.pid, l.target.pgPID), 0)
	res.Dropped = f.dropped()
	res.Held = f.connected() - sumValues(res.Dropped)
	return res, nil
}

// write runs the write phase and the drain, then counts.
func (l *load) write(ctx context.Context, f *fleet, res result, baseline int64) (result, error) {
	l.progress("run %d: writing %d UPDATE/s for %s", res.Run, l.cfg.Rate, l.cfg.Duration)
	recv0, m0 := f.received(), markCPU(l.target.pid, l.target.pgPID)
	wr, err := l.writers.run(ctx, l.cfg.Rate, l.cfg.Duration)
	if err != nil {
		return res, err
	}
	res.setWrites(wr, f.received()-recv0)
	counts, err := committedEvents(ctx, l.ctl, l.cfg.channel(), baseline)
	if err != nil {
		return res, err
	}
	expected := l.expected(f, counts)
	drained, complete, err := l.drain(ctx, f, recv0+expected)
	if err != nil {
		return res, err
	}
	res.DrainS, res.DrainIncomplete = drained.Seconds(), !complete
	res.setCPU(m0, markCPU(l.target.pid, l.target.pgPID), f.received()-recv0)
	res.setDeliveries(f, counts)
	res.Dropped = f.dropped()
	return res, nil
}

// expected sums what every client should receive of the counted events.
func (l *load) expected(f *fleet, counts map[string]uint64) uint64 {
	var n uint64
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.clients {
		n += counts[string(c.tenant)]
	}
	return n
}

// drain waits until the clients have received want broadcasts in all,
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

func (l *load) hubRSS() int64 {
	if l.target.pid == 0 {
		return 0
	}
	kb, err := procRSS(l.target.pid)
	if err != nil {
		l.progress("hub RSS: %v", err)
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
