package wire_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/hubdev/hub/hub/wire"
)

// sseEvent is one parsed server-sent event.
type sseEvent struct {
	id, event, data string
	hasID           bool
}

// parseSSE parses exactly one event the way EventSource does (one line per
// field, a blank line ends the event) and fails on anything else.
func parseSSE(t testing.TB, frame []byte) sseEvent {
	t.Helper()
	s := string(frame)
	require.True(t, strings.HasSuffix(s, "\n\n"), "frame must end with a blank line: %q", s)
	var ev sseEvent
	for line := range strings.SplitSeq(strings.TrimSuffix(s, "\n\n"), "\n") {
		require.NotContains(t, line, "\r")
		name, value, ok := strings.Cut(line, ": ")
		require.True(t, ok, "line %q", line)
		switch name {
		case "id":
			require.False(t, ev.hasID, "two ids")
			ev.id, ev.hasID = value, true
		case "event":
			require.Empty(t, ev.event, "two event lines")
			ev.event = value
		case "data":
			require.Empty(t, ev.data, "data on more than one line")
			ev.data = value
		default:
			t.Fatalf("unexpected field %q", name)
		}
	}
	return ev
}

func TestAppendSSEBroadcast(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		e    wire.Event
		id   string
		data string
	}{
		{"update carries old", orderFill, "7421-123",
			`{"channel":"orders","event":"UPDATE","payload":` + string(orderFill.Payload) + `,"old":` + string(orderFill.Old) + `}`},
		{"insert has no old", betPlaced, "7422-124",
			`{"channel":"bets","event":"INSERT","payload":` + string(betPlaced.Payload) + `}`},
		{"line breaks in raw JSON stay on one line", wire.Event{
			Pos: "1-2\r\n", Channel: "scores", Op: "UPDATE",
			Payload: json.RawMessage("{\n  \"live\": true,\r\n  \"note\": \"a\\nb\"\n}"),
			Old:     json.RawMessage("{\n\"live\":false}\n"),
		}, "1-2", `{"channel":"scores","event":"UPDATE","payload":{"live":true,"note":"a\nb"},"old":{"live":false}}`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ev := parseSSE(t, wire.AppendSSEBroadcast(nil, tt.e))
			require.Equal(t, sseEvent{id: tt.id, hasID: true, event: "broadcast", data: ev.data}, ev)
			requireFrame(t, tt.data, []byte(ev.data))
		})
	}
}

func TestAppendSSEGolden(t *testing.T) {
	t.Parallel()
	e := wire.Event{Pos: "100-7", Channel: "emergency", Op: "UPDATE", Payload: json.RawMessage(`{"emergency":true}`)}
	require.Equal(t,
		"id: 100-7\nevent: broadcast\ndata: {\"channel\":\"emergency\",\"event\":\"UPDATE\",\"payload\":{\"emergency\":true}}\n\n",
		string(wire.AppendSSEBroadcast(nil, e)))
	require.Equal(t,
		"event: error\ndata: {\"message\":\"Invalid since\",\"code\":1008}\n\n",
		string(wire.AppendSSEError(nil, wire.MsgInvalidSince, wire.ClosePolicy)))
	require.Equal(t, ": keep-alive\n\n", string(wire.AppendSSEKeepAlive(nil)))
}

func TestAppendSSEControl(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name  string
		got   []byte
		event string
		data  string
	}{
		{"connected", wire.AppendSSEConnected(nil, "node-a", wire.Subscribed{ID: 1, Channels: []string{"orders", "scores"}}),
			"connected", `{"node_id":"node-a","subscriptionId":1,"channels":["orders","scores"]}`},
		{"connected, resumed", wire.AppendSSEConnected(nil, "node-a", wire.Subscribed{ID: 1, Channels: []string{"orders"}, Resumed: true, Recovered: true}),
			"connected", `{"node_id":"node-a","subscriptionId":1,"channels":["orders"],"recovered":true}`},
		{"connected, not recovered", wire.AppendSSEConnected(nil, "n\nb", wire.Subscribed{ID: 1, Resumed: true}),
			"connected", `{"node_id":"n\nb","subscriptionId":1,"channels":[],"recovered":false}`},
		{"error", wire.AppendSSEError(nil, wire.MsgAPIKeyRevoked, wire.ClosePolicy),
			"error", `{"message":"api key revoked","code":1008}`},
		{"slow consumer", wire.AppendSSEError(nil, wire.SlowConsumer("1-2").Reason, wire.CloseTryAgain),
			"error", `{"message":"slow consumer; resume from 1-2","code":1013}`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ev := parseSSE(t, tt.got)
			require.False(t, ev.hasID)
			require.Equal(t, tt.event, ev.event)
			requireFrame(t, tt.data, []byte(ev.data))
		})
	}
}
