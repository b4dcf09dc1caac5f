package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strings"
	"time"

	"github.com/gorilla/websocket"

	"github.com/hubdev/hub/store"
)

// logical is one client as its user sees it: it starts at a position,
// connects, leaves and resumes with since, and must end up with every
// event of its tenant after its start, once, in order.
type logical struct {
	tenant   tenant
	start    store.Position
	last     store.Position // last event received; start before the first
	received []store.Position
	problem  string
}

// clientSlot keeps one logical client connected at a time until the end,
// replacing each one that leaves.
func (r *soakRun) clientSlot(ctx context.Context, slot int) {
	rng := rand.New(rand.NewPCG(uint64(slot), uint64(time.Now().UnixNano())))
	for ctx.Err() == nil {
		select {
		case <-r.final:
			return
		default:
		}
		start, err := store.New(r.pool).EventNewest(ctx)
		if err != nil {
			return
		}
		lc := &logical{tenant: r.tenants[rng.IntN(len(r.tenants))], start: start, last: start}
		r.live(ctx, lc, rng, time.Now().Add(randDur(rng, 20*time.Second, 3*time.Minute)))
		r.verify(context.WithoutCancel(ctx), lc)
	}
}

// live runs lc's sessions until it leaves (at leaveAt) or, at the end,
// until it has reached its tenant's last event.
func (r *soakRun) live(ctx context.Context, lc *logical, rng *rand.Rand, leaveAt time.Time) {
	first := true
	for ctx.Err() == nil && lc.problem == "" {
		select {
		case <-r.final:
			r.finish(ctx, lc)
			return
		default:
		}
		if time.Now().After(leaveAt) {
			return
		}
		sessionEnd := time.Now().Add(randDur(rng, time.Second, 30*time.Second))
		r.session(ctx, lc, rng, sessionEnd, first, nil)
		first = false
		// Offline a moment before resuming, as a reconnecting client is.
		select {
		case <-ctx.Done():
		case <-r.final:
		case <-time.After(randDur(rng, 0, 2*time.Second)):
		}
	}
}

// finish reconnects lc once more and reads until its tenant's last event.
func (r *soakRun) finish(ctx context.Context, lc *logical) {
	target := r.targets[lc.tenant.name]
	deadline := time.Now().Add(r.cfg.drain)
	for lc.problem == "" && lc.last.Less(target) && time.Now().Before(deadline) && ctx.Err() == nil {
		r.session(ctx, lc, nil, deadline, false, &target)
	}
	if lc.problem == "" && lc.last.Less(target) {
		lc.problem = fmt.Sprintf("did not reach the last event %s within %s (at %s)", target, r.cfg.drain, lc.last)
	}
}

// frame is what the soak reads of a protocol A frame.
type frame struct {
	Type      string `json:"type"`
	ID        string `json:"id"`
	Message   string `json:"message"`
	Recovered *bool  `json:"recovered"`
}

// session is one connection of lc: subscribe with since=lc.last, read
// until until, the end of the run, or, with target, until lc reaches it.
func (r *soakRun) session(ctx context.Context, lc *logical, rng *rand.Rand, until time.Time, first bool, target *store.Position) {
	wsURL := "ws" + strings.TrimPrefix(r.hubURL, "http") + "/ws/subscribe"
	d := websocket.Dialer{HandshakeTimeout: 10 * time.Second}
	ws, _, err := d.DialContext(ctx, wsURL, nil)
	if err != nil {
		r.dialFails.Add(1)
		return
	}
	defer ws.Close()
	r.sessions.Add(1)
	if !first {
		r.resumes.Add(1)
	}
	sub := map[string]any{"type": "subscribe", "apiKey": lc.tenant.key, "channels": []string{"orders"}, "since": lc.last.String()}
	if err := ws.WriteJSON(sub); err != nil {
		return
	}
	subscribed, began := false, time.Now()
	_ = ws.SetReadDeadline(until)
	done := make(chan struct{})
	defer close(done)
	final := r.final
	if target != nil {
		final = nil // already final: read until the target
	}
	go func() { // ends with the session; cuts the read short at the end of the run
		select {
		case <-done:
		case <-ctx.Done():
			_ = ws.SetReadDeadline(time.Now())
		case <-final:
			_ = ws.SetReadDeadline(time.Now())
		}
	}()
	for {
		if target != nil && !lc.last.Less(*target) {
			_ = ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
			return
		}
		_, data, err := ws.ReadMessage()
		if err != nil {
			var ce *websocket.CloseError
			var ne net.Error
			switch {
			case errors.As(err, &ce):
				r.countClose(ce.Code)
			case errors.As(err, &ne) && ne.Timeout():
				if !subscribed && time.Since(began) > 5*time.Second {
					lc.problem = "no subscribed reply within 5s"
				}
				// Leave politely or just drop the TCP connection.
				if rng != nil && rng.IntN(2) == 0 {
					_ = ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
				}
			}
			return
		}
		var f frame
		if err := json.Unmarshal(data, &f); err != nil {
			lc.problem = fmt.Sprintf("unparsable frame %q", data)
			return
		}
		switch f.Type {
		case "subscribed":
			subscribed = true
			if f.Recovered == nil || !*f.Recovered {
				lc.problem = fmt.Sprintf("resume from %s not recovered", lc.last)
			}
		case "broadcast":
			p, err := store.ParsePosition(f.ID)
			if err != nil {
				lc.problem = fmt.Sprintf("bad id %q", f.ID)
				return
			}
			if !lc.last.Less(p) {
				lc.problem = fmt.Sprintf("event %s after %s: out of order or twice", p, lc.last)
				return
			}
			lc.last = p
			lc.received = append(lc.received, p)
		case "error":
			lc.problem = "error frame: " + f.Message
			return
		}
	}
}

// verify compares what lc received with the log.
func (r *soakRun) verify(ctx context.Context, lc *logical) {
	res := result{tenant: lc.tenant.name, received: len(lc.received), problem: lc.problem}
	want, err := r.expected(ctx, lc.tenant.name, lc.start, lc.last)
	switch {
	case err != nil:
		res.problem = "verify: " + err.Error()
	case res.problem != "":
	case len(want) != len(lc.received):
		res.problem = fmt.Sprintf("received %d events, the log has %d in (%s, %s]", len(lc.received), len(want), lc.start, lc.last)
	default:
		for i := range want {
			if want[i] != lc.received[i] {
				res.problem = fmt.Sprintf("event %d is %s, the log says %s (after %s)", i, lc.received[i], want[i], lc.start)
				break
			}
		}
	}
	res.expected = len(want)
	r.record(res)
}

func randDur(rng *rand.Rand, lo, hi time.Duration) time.Duration {
	return lo + time.Duration(rng.Int64N(int64(hi-lo)+1))
}
