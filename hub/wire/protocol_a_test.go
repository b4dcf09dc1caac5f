package wire_test

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/hubdev/hub/hub/wire"
)

func TestAppendBroadcastA(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		e    wire.Event
		want string
	}{
		{"update carries old", orderFill, `{"type":"broadcast","id":"7421-123","channel":"orders","event":"UPDATE",
			"payload":` + string(orderFill.Payload) + `,"old":` + string(orderFill.Old) + `}`},
		{"insert has no old", betPlaced, `{"type":"broadcast","id":"7422-124","channel":"bets","event":"INSERT",
			"payload":` + string(betPlaced.Payload) + `}`},
		{"null old is left out", withOld(betPlaced, "null"), `{"type":"broadcast","id":"7422-124","channel":"bets","event":"INSERT",
			"payload":` + string(betPlaced.Payload) + `}`},
		{"empty old is left out", withOld(betPlaced, ""), `{"type":"broadcast","id":"7422-124","channel":"bets","event":"INSERT",
			"payload":` + string(betPlaced.Payload) + `}`},
		{"delete", wire.Event{Pos: "1-2", Channel: "orders", Op: "DELETE", Payload: json.RawMessage(`{"orderId":1}`)},
			`{"type":"broadcast","id":"1-2","channel":"orders","event":"DELETE","payload":{"orderId":1}}`},
		{"missing payload is null", wire.Event{Pos: "1-2", Channel: "c", Op: "UPDATE"},
			`{"type":"broadcast","id":"1-2","channel":"c","event":"UPDATE","payload":null}`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			requireFrame(t, tt.want, wire.AppendBroadcastA(nil, tt.e))
		})
	}
}

func withOld(e wire.Event, old string) wire.Event {
	e.Old = json.RawMessage(old)
	return e
}

func TestAppendBroadcastAGolden(t *testing.T) {
	t.Parallel()
	e := wire.Event{
		Pos: "100-7", Channel: "scores", Op: "UPDATE",
		Payload: json.RawMessage(`{"fixtureId":"f1","scores":{"home":2}}`),
		Old:     json.RawMessage(`{"scores":{"home":1}}`),
	}
	require.Equal(t,
		`{"type":"broadcast","id":"100-7","channel":"scores","event":"UPDATE","payload":{"fixtureId":"f1","scores":{"home":2}},"old":{"scores":{"home":1}}}`,
		string(wire.AppendBroadcastA(nil, e)))
	// Appends, never overwrites.
	require.Equal(t, `x{"type":"pong"}`, string(wire.AppendPongA([]byte("x"))))
}

func TestControlFramesA(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		got  []byte
		want string
	}{
		{"subscribed", wire.AppendSubscribedA(nil, wire.Subscribed{ID: 1, Channels: []string{"orders", "bets", "accounts", "scores", "emergency"}}),
			`{"type":"subscribed","subscriptionId":1,"channels":["orders","bets","accounts","scores","emergency"]}`},
		{"subscribed, no channels", wire.AppendSubscribedA(nil, wire.Subscribed{ID: 3}),
			`{"type":"subscribed","subscriptionId":3,"channels":[]}`},
		{"subscribed, recovered", wire.AppendSubscribedA(nil, wire.Subscribed{ID: 2, Channels: []string{"orders"}, Resumed: true, Recovered: true}),
			`{"type":"subscribed","subscriptionId":2,"channels":["orders"],"recovered":true}`},
		{"subscribed, not recovered", wire.AppendSubscribedA(nil, wire.Subscribed{ID: 2, Channels: []string{"orders"}, Resumed: true}),
			`{"type":"subscribed","subscriptionId":2,"channels":["orders"],"recovered":false}`},
		{"unsubscribed", wire.AppendUnsubscribedA(nil, 4), `{"type":"unsubscribed","subscriptionId":4}`},
		{"pong", wire.AppendPongA(nil), `{"type":"pong"}`},
		{"heartbeat", wire.AppendHeartbeatA(nil), `{"type":"heartbeat"}`},
		{"error", wire.AppendErrorA(nil, wire.MsgAPIKeyRequired), `{"type":"error","message":"apiKey required"}`},
		{"error with a name to escape", wire.AppendErrorA(nil, wire.UnknownChannel("a\"b\\c\n\x01\u2028")),
			`{"type":"error","message":"Unknown channel: a\"b\\c\n\u0001\u2028"}`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			requireFrame(t, tt.want, tt.got)
		})
	}
}

func TestStringEscaping(t *testing.T) {
	t.Parallel()
	for _, s := range []string{
		"", "plain", `"quoted"`, `back\slash`, "tab\tnl\ncr\rbs\bff\f", "\x00\x1f\x7f",
		"<html>&amp;", "下半场", "😀", "\u2028\u2029", "bad \xff utf8 \xc3", "\xed\xa0\x80",
	} {
		got := wire.AppendErrorA(nil, s)
		require.True(t, json.Valid(got), "%q → %s", s, got)
		var frame struct{ Message string }
		require.NoError(t, json.Unmarshal(got, &frame))
		require.Equal(t, stdRoundTrip(t, s), frame.Message, "%q", s)
	}
	// Exact escapes, as encoding/json writes them (HTML characters left alone).
	require.Equal(t, `{"type":"error","message":"\"\\\n\r\t\b\f\u0000\u001f<>&\ufffd\u2028"}`,
		string(wire.AppendErrorA(nil, "\"\\\n\r\t\b\f\x00\x1f<>&\xff\u2028")))
}

// stdRoundTrip is what s becomes through encoding/json, which replaces
// invalid UTF-8 the same way the encoders do.
func stdRoundTrip(t testing.TB, s string) string {
	b, err := json.Marshal(s)
	require.NoError(t, err)
	var out string
	require.NoError(t, json.Unmarshal(b, &out))
	return out
}

func TestDecodeA(t *testing.T) {
	t.Parallel()
	const key = "3f2b8c1e-9a4d-4e7f-8b6a-1c2d3e4f5a6b"
	for _, tt := range []struct {
		name string
		in   string
		want wire.Request
	}{
		{"seed subscribe", `{"type": "subscribe", "apiKey": "` + key + `", "channels": ["orders", "bets", "accounts", "scores", "emergency"]}`,
			wire.Request{Type: "subscribe", APIKey: key, HasAPIKey: true, Channels: []string{"orders", "bets", "accounts", "scores", "emergency"}}},
		{"with since", `{"type":"subscribe","apiKey":"` + key + `","channels":["orders"],"since":"7421-123"}`,
			wire.Request{Type: "subscribe", APIKey: key, HasAPIKey: true, Channels: []string{"orders"}, Since: "7421-123"}},
		{"since is passed unparsed", `{"type":"subscribe","since":"yesterday"}`,
			wire.Request{Type: "subscribe", Since: "yesterday"}},
		{"apiKey omitted", `{"type":"subscribe","channels":["scores"]}`,
			wire.Request{Type: "subscribe", Channels: []string{"scores"}}},
		{"apiKey null", `{"type":"subscribe","apiKey":null}`, wire.Request{Type: "subscribe"}},
		{"apiKey empty", `{"type":"subscribe","apiKey":""}`, wire.Request{Type: "subscribe"}},
		{"apiKey kept as sent", `{"type":"subscribe","apiKey":" X "}`, wire.Request{Type: "subscribe", APIKey: " X ", HasAPIKey: true}},
		{"channels empty", `{"type":"subscribe","apiKey":"k","channels":[]}`, wire.Request{Type: "subscribe", APIKey: "k", HasAPIKey: true}},
		{"channels null, since null", `{"type":"subscribe","channels":null,"since":null}`, wire.Request{Type: "subscribe"}},
		{"since empty", `{"type":"subscribe","since":""}`, wire.Request{Type: "subscribe"}},
		{"channel names kept as sent", `{"type":"subscribe","channels":["Orders","","orders"]}`,
			wire.Request{Type: "subscribe", Channels: []string{"Orders", "", "orders"}}},
		{"unknown fields ignored", `{"type":"ping","id":7,"extra":{"a":[1]}}`, wire.Request{Type: "ping"}},
		{"ping", `{"type":"ping"}`, wire.Request{Type: "ping"}},
		{"unsubscribe", ` {"type":"unsubscribe"} `, wire.Request{Type: "unsubscribe"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := wire.DecodeA([]byte(tt.in))
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
}

func TestDecodeAInvalid(t *testing.T) {
	t.Parallel()
	for _, in := range []string{
		``, `not json`, `{`, `null`, `[]`, `"subscribe"`, `{}`,
		`{"type":null}`, `{"type":"Subscribe"}`, `{"type":"broadcast"}`, `{"type":1}`,
		`{"type":"subscribe","apiKey":1}`,
		`{"type":"subscribe","channels":"orders"}`,
		`{"type":"subscribe","channels":[null]}`,
		`{"type":"subscribe","channels":[1]}`,
		`{"type":"subscribe","since":7421}`,
		`{"type":"ping"}{"type":"ping"}`,
		`{"type":"ping"} x`,
	} {
		_, err := wire.DecodeA([]byte(in))
		require.ErrorIs(t, err, wire.ErrInvalidMessage, "%s", in)
	}
}

func TestDecodeSSE(t *testing.T) {
	t.Parallel()
	got, err := wire.DecodeSSE([]byte(`{"apiKey":"k","channels":["orders","scores"],"since":"1-2"}`))
	require.NoError(t, err)
	require.Equal(t, wire.Request{Type: "subscribe", APIKey: "k", HasAPIKey: true, Channels: []string{"orders", "scores"}, Since: "1-2"}, got)

	got, err = wire.DecodeSSE([]byte(`{}`))
	require.NoError(t, err)
	require.Equal(t, wire.Request{Type: "subscribe"}, got)

	for _, in := range []string{``, `[]`, `{"apiKey":5}`, `{"channels":"orders"}`} {
		_, err := wire.DecodeSSE([]byte(in))
		require.ErrorIs(t, err, wire.ErrInvalidMessage, "%s", in)
	}
}
