package hub

import (
	"sync/atomic"
	"time"

	"github.com/hubdev/hub/hub/wire"
	"github.com/hubdev/hub/store"
)

// Protocol names a transport's frame format.
type Protocol int

// The transports (SPEC §4, §5, §7).
const (
	ProtocolA   Protocol = iota // /ws/subscribe
	ProtocolB                   // /v1/ws, EOSPark-compatible
	ProtocolSSE                 // /sse/subscribe
	numProtocols
)

// String is the protocol's name in leases, metrics and the admin API: the
// store's, which names them in the leases.
func (p Protocol) String() string {
	switch p {
	case ProtocolA:
		return store.ProtocolWS
	case ProtocolB:
		return store.ProtocolEOSPark
	case ProtocolSSE:
		return store.ProtocolSSE
	}
	return "unknown"
}

var encoders = [numProtocols]func([]byte, wire.Event) []byte{
	ProtocolA:   wire.AppendBroadcastA,
	ProtocolB:   wire.AppendDataB,
	ProtocolSSE: wire.AppendSSEBroadcast,
}

// message is one event on its way to the sessions that receive it, encoded
// at most once per protocol however many sessions send it.
type message struct {
	event  store.Event
	readAt time.Time // when this node read the event from the log
	frames [numProtocols]atomic.Pointer[[]byte]
	// filtered holds the results of the interned row filters checked so
	// far; made when the first is. Only offer uses it, with the hub's lock
	// held.
	filtered map[*wire.ChannelFilter]bool
}

// passes reports whether the event passes f, checking each distinct
// (interned) filter once and counting the checks in checks. Must be
// called with the hub's lock held.
func (m *message) passes(f *wire.ChannelFilter, checks *atomic.Int64) bool {
	pass, ok := m.filtered[f]
	if !ok {
		if m.filtered == nil {
			m.filtered = map[*wire.ChannelFilter]bool{}
		}
		pass = f.Match(m.event.Payload)
		m.filtered[f] = pass
		checks.Add(1)
	}
	return pass
}

func newMessage(e store.Event, readAt time.Time) *message {
	return &message{event: e, readAt: readAt}
}

// frame returns the event in p's format. Two sessions racing to encode it
// first both produce the same bytes; one copy wins.
func (m *message) frame(p Protocol) []byte {
	if f := m.frames[p].Load(); f != nil {
		return *f
	}
	e := &m.event
	f := encoders[p](nil, wire.Event{
		Pos: e.Pos.String(), ID: e.Pos.ID, Channel: e.Channel, Op: e.Op, Subject: e.Subject,
		Payload: e.Payload, Old: e.Old, CreatedAt: e.CreatedAt,
	})
	m.frames[p].CompareAndSwap(nil, &f)
	return *m.frames[p].Load()
}
