package wire_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hubdev/hub/hub/wire"
)

// TestAllocFree checks that encoders allocate nothing once dst has room
// (SPEC §6: an event is encoded once per protocol, on the reader's path).
// Not parallel: AllocsPerRun refuses to run in a parallel test.
func TestAllocFree(t *testing.T) {
	beat := time.Date(2026, 11, 2, 15, 30, 2, 0, time.UTC)
	sub := wire.Subscribed{ID: 1, Channels: []string{"orders", "scores"}, Resumed: true}
	for name, f := range map[string]func(dst []byte) []byte{
		"BroadcastA":   func(dst []byte) []byte { return wire.AppendBroadcastA(dst, orderFill) },
		"SubscribedA":  func(dst []byte) []byte { return wire.AppendSubscribedA(dst, sub) },
		"ErrorA":       func(dst []byte) []byte { return wire.AppendErrorA(dst, "Unknown channel: \"x\"\n") },
		"DataB":        func(dst []byte) []byte { return wire.AppendDataB(dst, orderFill) },
		"HeartbeatB":   func(dst []byte) []byte { return wire.AppendHeartbeatB(dst, beat) },
		"SubscribeB":   func(dst []byte) []byte { return wire.AppendSubscribeB(dst, "too many") },
		"SSEBroadcast": func(dst []byte) []byte { return wire.AppendSSEBroadcast(dst, orderFill) },
		"SSEConnected": func(dst []byte) []byte { return wire.AppendSSEConnected(dst, "node-a", sub) },
		"CanonicalKey": func(dst []byte) []byte {
			_, _ = wire.CanonicalKey("3f2b8c1e-9a4d-4e7f-8b6a-1c2d3e4f5a6b", true)
			return dst
		},
	} {
		dst := make([]byte, 0, 4096)
		allocs := testing.AllocsPerRun(100, func() { dst = f(dst[:0]) })
		require.Zero(t, allocs, name)
	}
}

func benchmarkEncoder(b *testing.B, f func(dst []byte, e wire.Event) []byte) {
	dst := make([]byte, 0, 4096)
	b.ReportAllocs()
	b.SetBytes(int64(len(f(nil, orderFill))))
	for b.Loop() {
		dst = f(dst[:0], orderFill)
	}
}

func BenchmarkAppendBroadcastA(b *testing.B) { benchmarkEncoder(b, wire.AppendBroadcastA) }

func BenchmarkAppendDataB(b *testing.B) { benchmarkEncoder(b, wire.AppendDataB) }

func BenchmarkAppendSSE(b *testing.B) { benchmarkEncoder(b, wire.AppendSSEBroadcast) }

func BenchmarkDecodeA(b *testing.B) {
	frame := []byte(`{"type":"subscribe","apiKey":"3f2b8c1e-9a4d-4e7f-8b6a-1c2d3e4f5a6b","channels":["orders","bets","scores"],"since":"7421-123"}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := wire.DecodeA(frame); err != nil {
			b.Fatal(err)
		}
	}
}
