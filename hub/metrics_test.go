package hub_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hubdev/hub/hub"
	"github.com/hubdev/hub/hub/wire"
	"github.com/hubdev/hub/store"
)

func TestHistogramBuckets(t *testing.T) {
	t.Parallel()
	var h hub.Histogram
	empty := h.Snapshot()
	require.Zero(t, empty.Count)
	require.Len(t, empty.Cumulative, len(empty.Bounds))
	require.IsIncreasing(t, empty.Bounds)
	require.Equal(t, time.Millisecond, empty.Bounds[0])
	require.Equal(t, time.Minute, empty.Bounds[len(empty.Bounds)-1])

	for _, d := range []time.Duration{
		-time.Second,          // clock skew: counts as 0
		0,                     // ≤ 1ms
		time.Millisecond,      // a bound belongs to its own bucket
		time.Millisecond + 1,  // ≤ 2.5ms
		40 * time.Millisecond, // ≤ 50ms
		time.Second,           // ≤ 1s
		time.Minute,           // ≤ 1min
		time.Hour,             // past the last bound: only in Count
	} {
		h.Observe(d)
	}
	s := h.Snapshot()
	cum := map[time.Duration]uint64{}
	for i, b := range s.Bounds {
		cum[b] = s.Cumulative[i]
	}
	require.Equal(t, uint64(3), cum[time.Millisecond])
	require.Equal(t, uint64(4), cum[2500*time.Microsecond])
	require.Equal(t, uint64(4), cum[25*time.Millisecond])
	require.Equal(t, uint64(5), cum[50*time.Millisecond])
	require.Equal(t, uint64(5), cum[500*time.Millisecond])
	require.Equal(t, uint64(6), cum[time.Second])
	require.Equal(t, uint64(6), cum[30*time.Second])
	require.Equal(t, uint64(7), cum[time.Minute])
	require.Equal(t, uint64(8), s.Count)
	require.Equal(t, time.Millisecond+time.Millisecond+1+40*time.Millisecond+time.Second+time.Minute+time.Hour, s.Sum)
	require.IsNonDecreasing(t, s.Cumulative)

	s.Bounds[0] = 0
	require.Equal(t, time.Millisecond, h.Snapshot().Bounds[0], "a snapshot is the caller's")
}

// newBareHub is a hub without a log or a reader: enough to connect
// sessions and read the counters.
func newBareHub() *hub.Hub { return hub.New(nil, store.Position{}, hub.Config{}) }

func connectBare(h *hub.Hub, p hub.Protocol) (*fakeConn, *hub.Session) {
	c := newFakeConn()
	s := h.Connect(hub.ConnectParams{Conn: c, Protocol: p, Credits: 8})
	c.sess = s
	return c, s
}

func TestConnectionsPerProtocol(t *testing.T) {
	t.Parallel()
	h := newBareHub()
	conns := func() [3]int {
		st := h.Stats()
		return [3]int{st.Connections[hub.ProtocolA], st.Connections[hub.ProtocolB], st.Connections[hub.ProtocolSSE]}
	}
	require.Equal(t, [3]int{0, 0, 0}, conns())

	_, a1 := connectBare(h, hub.ProtocolA)
	_, a2 := connectBare(h, hub.ProtocolA)
	_, b1 := connectBare(h, hub.ProtocolB)
	_, sse := connectBare(h, hub.ProtocolSSE)
	t.Cleanup(func() {
		for _, s := range []*hub.Session{a1, a2, b1, sse} {
			s.Gone()
		}
	})
	require.Equal(t, [3]int{2, 1, 1}, conns())
	require.Equal(t, 4, h.Stats().Sessions)

	a1.Close(wire.Close{Code: 1000, Reason: "bye"}) // closed by the server
	require.Equal(t, [3]int{1, 1, 1}, conns())
	sse.Gone() // the client went away
	sse.Gone()
	require.Equal(t, [3]int{1, 1, 0}, conns(), "a session leaves once")
	b1.Close(wire.Close{Code: 1000, Reason: "bye"})
	b1.Gone()
	require.Equal(t, [3]int{1, 0, 0}, conns())
	h.CloseAll(wire.CloseShutdown)
	require.Equal(t, [3]int{0, 0, 0}, conns())
}

func TestReaderGauges(t *testing.T) {
	t.Parallel()
	h := newBareHub()
	st := h.Stats()
	require.Zero(t, st.ReaderLag)
	require.Zero(t, st.OldestWrite)

	now := time.Now()
	h.ObserveRead([]store.Event{{CreatedAt: now.Add(-3 * time.Second)}, {CreatedAt: now.Add(-2 * time.Second)}, {CreatedAt: now.Add(-5 * time.Second)}})
	lag := h.Stats().ReaderLag
	require.GreaterOrEqual(t, lag, 2*time.Second, "the newest event's age, whatever its place in the batch")
	require.Less(t, lag, 3*time.Second)
	require.EqualValues(t, 1, h.Stats().Batches)

	h.ObserveRead([]store.Event{{CreatedAt: time.Now().Add(time.Minute)}})
	require.Zero(t, h.Stats().ReaderLag, "an event from a clock ahead of ours is not negative lag")
	h.ObserveRead(nil)
	require.Zero(t, h.Stats().ReaderLag, "0 once a read finds nothing")
	require.EqualValues(t, 2, h.Stats().Batches, "empty reads are not batches")

	h.ObserveBacklog(store.Backlog{HeldBack: true, OldestWrite: 12 * time.Second})
	require.Equal(t, 12*time.Second, h.Stats().OldestWrite)
	h.ObserveBacklog(store.Backlog{})
	require.Zero(t, h.Stats().OldestWrite)
}

// Every event frame written is timed, from the read to Sent; control
// frames are not.
func TestDeliveryLatency(t *testing.T) {
	b := setupHub(t, hub.Config{})
	conn, _ := b.connect(t, hub.Subscription{Client: "acme", Channels: []string{"orders"}})
	for range 3 {
		b.exec(t, `INSERT INTO orders (client) VALUES ('acme')`)
	}
	require.Len(t, conn.wait(t, 3), 3)
	require.Eventually(t, func() bool { return b.hub.Stats().Delivery.Count == 3 }, 10*time.Second, time.Millisecond)
	st := b.hub.Stats()
	require.EqualValues(t, 3, st.Events)
	require.EqualValues(t, 3, st.Deliveries[hub.ProtocolA])
	require.Zero(t, st.Deliveries[hub.ProtocolB])
	require.Equal(t, 1, st.Connections[hub.ProtocolA])
	require.Positive(t, st.Delivery.Sum)
	require.Equal(t, uint64(3), st.Delivery.Cumulative[len(st.Delivery.Cumulative)-1], "well under a minute")
}
