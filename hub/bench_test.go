package hub_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/hubdev/hub/hub"
	"github.com/hubdev/hub/hub/wire"
	"github.com/hubdev/hub/store"
)

// memLog is a Log with nothing in it but the channels: the benchmarks
// measure routing, not PostgreSQL. They take no snapshots: those methods
// are the nil Log's, and would panic.
type memLog struct{ hub.Log }

func (memLog) EventsFor(_ context.Context, f store.EventFilter, _ int, _ int64) (store.EventPage, error) {
	return store.EventPage{Reached: f.After, Complete: true}, nil
}
func (memLog) Horizon(context.Context) (store.Position, error)     { return store.Position{}, nil }
func (memLog) EventNewest(context.Context) (store.Position, error) { return store.Position{}, nil }
func (memLog) ChannelList(context.Context) ([]string, error) {
	return []string{"accounts", "bets", "emergency", "orders", "scores"}, nil
}

// sinkConn takes every frame; ack reports them written, as a transport
// that keeps up does from its writer (never under the session's lock, as
// Send is called).
type sinkConn struct {
	sess   *hub.Session
	frames int
}

func (c *sinkConn) Send(frames ...[]byte) { c.frames += len(frames) }
func (c *sinkConn) Close(wire.Close)      {}

func (c *sinkConn) ack() {
	for ; c.frames > 0; c.frames-- {
		c.sess.Sent(1)
	}
}

// benchHub has sessions subscribed to orders, spread over tenants.
func benchHub(b *testing.B, sessions, tenants int) (*hub.Hub, []*sinkConn) {
	b.Helper()
	h := hub.New(memLog{}, store.Position{}, hub.Config{SendBuffer: 1 << 20})
	if err := h.LoadChannels(context.Background()); err != nil {
		b.Fatal(err)
	}
	conns := make([]*sinkConn, sessions)
	for i := range sessions {
		c := &sinkConn{}
		s := h.Connect(hub.ConnectParams{ID: fmt.Sprint(i), Conn: c, Protocol: hub.ProtocolA, Credits: 1 << 40})
		c.sess, conns[i] = s, c
		if _, err := s.Subscribe(context.Background(), hub.Subscription{
			Client: fmt.Sprintf("t%d", i%tenants), Channels: []string{"orders", "scores"},
		}); err != nil {
			b.Fatal(err)
		}
	}
	return h, conns
}

func benchEvents(n int, channel string, tenants int) []store.Event {
	payload := json.RawMessage(`{"orderId":123,"client":"t1","orderStatus":"FILLED","matchedStake":100.0,"matchedAt":"2026-02-15T10:30:05Z"}`)
	old := json.RawMessage(`{"orderStatus":"PLACED","matchedStake":0}`)
	events := make([]store.Event, n)
	for i := range events {
		client, scope := "", store.ScopeGlobal
		if tenants > 0 {
			client, scope = fmt.Sprintf("t%d", i%tenants), store.ScopeTenant
		}
		events[i] = store.Event{Pos: store.Position{Xid: 1000, ID: int64(i + 1)}, Channel: channel, Op: "UPDATE",
			Client: client, Subject: "acc-1", Payload: payload, Old: old, CreatedAt: time.Now(), Scope: scope}
	}
	return events
}

// BenchmarkRouteTenant routes tenant events (orders) to 10,000 sessions of
// 100 tenants: each event reaches 100 sessions, and the cost should be in
// proportion to those, not to all 10,000.
func BenchmarkRouteTenant(b *testing.B) {
	benchRoute(b, benchEvents(1000, "orders", 100), 100)
}

// BenchmarkRouteGlobal routes global events (scores) to 10,000 sessions:
// every session receives every event.
func BenchmarkRouteGlobal(b *testing.B) {
	benchRoute(b, benchEvents(10, "scores", 0), 10000)
}

// benchRoute delivers batch again and again, at new positions, to 10,000
// sessions of 100 tenants; each event reaches fanout of them.
func benchRoute(b *testing.B, batch []store.Event, fanout int) {
	h, conns := benchHub(b, 10000, 100)
	b.ReportAllocs()
	b.ResetTimer()
	var delivered int
	for i := 0; b.Loop(); i++ {
		for j := range batch {
			batch[j].Pos = store.Position{Xid: uint64(1000 + i), ID: int64(j + 1)}
		}
		if err := h.Deliver(context.Background(), batch); err != nil {
			b.Fatal(err)
		}
		for _, c := range conns {
			c.ack()
		}
		delivered += len(batch) * fanout
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(delivered), "ns/delivery")
}
