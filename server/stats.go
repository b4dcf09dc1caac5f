package main

import (
	"context"
	"sync"
	"time"

	"github.com/hubdev/hub/api"
	"github.com/hubdev/hub/hub"
)

// adminStats is api.StatsSource over the hub's counters; Run samples them
// every second so that the rates cover the last five seconds.
type adminStats struct {
	node string
	hub  *hub.Hub

	mu      sync.Mutex // guards samples
	samples []statsSample
}

type statsSample struct {
	at                 time.Time
	events, deliveries int64
}

const statsSamples = 6

// Run samples until ctx ends.
func (s *adminStats) Run(ctx context.Context) error {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		s.sample(time.Now())
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func (s *adminStats) sample(now time.Time) {
	st := s.hub.Stats()
	var d int64
	for _, n := range st.Deliveries {
		d += n
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.samples = append(s.samples, statsSample{at: now, events: st.Events, deliveries: d})
	if len(s.samples) > statsSamples {
		s.samples = s.samples[1:]
	}
}

// AdminStats implements api.StatsSource.
func (s *adminStats) AdminStats() api.AdminStats {
	st := s.hub.Stats()
	out := api.AdminStats{
		Node: s.node, ReaderLag: st.ReaderLag, Position: st.Position,
		Connections: api.ConnectionCounts{
			WS: st.Connections[hub.ProtocolA], EOSPark: st.Connections[hub.ProtocolB], SSE: st.Connections[hub.ProtocolSSE],
		},
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if n := len(s.samples); n >= 2 {
		a, b := s.samples[0], s.samples[n-1]
		if secs := b.at.Sub(a.at).Seconds(); secs > 0 {
			out.EventsPerSecond = float64(b.events-a.events) / secs
			out.DeliveriesPerSecond = float64(b.deliveries-a.deliveries) / secs
		}
	}
	return out
}
