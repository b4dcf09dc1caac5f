package wire_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/hubdev/hub/hub/wire"
)

// Events shaped like the seed's examples (seed 002 §"消息示例").
var (
	orderFill = wire.Event{
		Pos:     "7421-123",
		ID:      123,
		Channel: "orders",
		Op:      "UPDATE",
		Subject: "acct-1",
		Payload: json.RawMessage(`{"orderId":123,"fixtureId":"id1000000861624412","outcomeId":161,"exchange":"polymarket","exchangeOrderId":"0x1a2b3c","orderStatus":"FILLED","matchedStatus":"FULLY_MATCHED","orderCents":0.45,"orderStake":100.0,"matchedStake":100.0,"matchedAt":"2026-02-15T10:30:05Z"}`),
		Old:     json.RawMessage(`{"orderStatus":"PLACED","matchedStatus":"NOT_MATCHED","matchedStake":0}`),
		// A non-UTC zone: the wire shows UTC.
		CreatedAt: time.Date(2026, 2, 15, 11, 30, 5, 7_000_000, time.FixedZone("CET", 3600)),
	}
	betPlaced = wire.Event{
		Pos:       "7422-124",
		ID:        124,
		Channel:   "bets",
		Op:        "INSERT",
		Subject:   "acct-1",
		Payload:   json.RawMessage(`{"betId":456,"orderId":123,"sentData":{"requestId":"a1b2c3d4","price":1.808},"placedAt":"2026-02-15T10:30:08Z"}`),
		CreatedAt: time.Date(2026, 2, 15, 10, 30, 8, 0, time.UTC),
	}
	emergencyOn = wire.Event{
		Pos:       "9000-200",
		ID:        200,
		Channel:   "emergency",
		Op:        "UPDATE",
		Payload:   json.RawMessage(`{"emergency":true,"reason":"手动触发","triggeredAt":"2026-02-15T10:30:00Z"}`),
		Old:       json.RawMessage(`{"emergency":false}`),
		CreatedAt: time.Date(2026, 2, 15, 10, 30, 0, 0, time.UTC),
	}
)

// requireFrame checks that got is valid JSON with exactly the structure of
// want: decoding compares key sets, so a key that must be absent is.
func requireFrame(t *testing.T, want string, got []byte) {
	t.Helper()
	require.True(t, json.Valid(got), "invalid JSON: %s", got)
	require.JSONEq(t, want, string(got))
}

func TestCloseCodes(t *testing.T) {
	t.Parallel()
	require.Equal(t, []int{1000, 1008, 1009, 1011, 1012, 1013}, []int{
		wire.CloseNormal, wire.ClosePolicy, wire.CloseTooBig,
		wire.CloseInternal, wire.CloseRestart, wire.CloseTryAgain,
	})
}

func TestMessages(t *testing.T) {
	t.Parallel()
	require.Equal(t, "Unknown channel: bogus", wire.UnknownChannel("bogus"))
	require.Equal(t, wire.Close{Code: 1013, Reason: "slow consumer; resume from 7421-123"}, wire.SlowConsumer("7421-123"))
	require.Equal(t, "Unknown contract: bogus", wire.UnknownContract("bogus"))
	require.Equal(t, "invalid message", wire.ErrInvalidMessage.Error())
}

func TestCloseReason(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		in   string
		want int // length in bytes
	}{
		{"short", "api key revoked", 15},
		{"exactly 123", strings.Repeat("x", 123), 123},
		{"ascii cut", wire.UnknownChannel(strings.Repeat("x", 200)), 123},
		{"two-byte runes", strings.Repeat("é", 100), 122},
		{"four-byte runes", strings.Repeat("😀", 40), 120},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := wire.CloseReason(tt.in)
			require.Len(t, got, tt.want)
			require.True(t, strings.HasPrefix(tt.in, got))
			require.True(t, utf8.ValidString(got))
		})
	}
}
