package wire

import (
	"encoding/json"
	"errors"
)

// Types of protocol A frames a client sends (SPEC §4).
const (
	TypeSubscribe   = "subscribe"
	TypeUnsubscribe = "unsubscribe"
	TypePing        = "ping"
)

// Request is one decoded protocol A frame, or an SSE subscribe body.
type Request struct {
	Type string // TypeSubscribe, TypeUnsubscribe or TypePing
	// APIKey as sent; HasAPIKey is false when "apiKey" was omitted, null
	// or "", so that a later subscribe can keep the connection's key
	// (SPEC §4 step 3) and an empty key answers "apiKey required".
	APIKey    string
	HasAPIKey bool
	// Channels as sent; nil when omitted, null or empty, all of which mean
	// every channel.
	Channels []string
	// Since as sent, not yet parsed; "" when omitted, null or "" (SPEC
	// §4 step 3).
	Since string
	// Snapshot asks for the current rows first (SPEC §10); false when
	// omitted or null.
	Snapshot bool
	// Filter as sent, not yet parsed (ParseFilter): a malformed one is
	// refused as "Invalid filter", not as an invalid message.
	Filter json.RawMessage
}

// requestJSON has pointers so that null is told apart from a value and a
// null inside channels is refused.
type requestJSON struct {
	Type     *string         `json:"type"`
	APIKey   *string         `json:"apiKey"`
	Channels []*string       `json:"channels"`
	Since    *string         `json:"since"`
	Snapshot *bool           `json:"snapshot"`
	Filter   json.RawMessage `json:"filter"`
}

var errUnknownType = errors.New("missing or unknown type")

// DecodeA decodes a protocol A text frame. Unknown fields are ignored. The
// error wraps ErrInvalidMessage when data is not a JSON object, its type is
// missing or unknown, or a known field has the wrong JSON type.
func DecodeA(data []byte) (Request, error) {
	var in requestJSON
	if err := json.Unmarshal(data, &in); err != nil {
		return Request{}, invalid(err)
	}
	if in.Type == nil {
		return Request{}, invalid(errUnknownType)
	}
	switch *in.Type {
	case TypeSubscribe, TypeUnsubscribe, TypePing:
	default:
		return Request{}, invalid(errUnknownType)
	}
	return in.request(*in.Type)
}

// DecodeSSE decodes the JSON body of POST /sse/subscribe,
// {"apiKey":…,"channels":[…],"since":…} (SPEC §7); its Type is
// TypeSubscribe. Errors are as for DecodeA.
func DecodeSSE(data []byte) (Request, error) {
	var in requestJSON
	if err := json.Unmarshal(data, &in); err != nil {
		return Request{}, invalid(err)
	}
	return in.request(TypeSubscribe)
}

func (in *requestJSON) request(typ string) (Request, error) {
	r := Request{Type: typ}
	if in.APIKey != nil && *in.APIKey != "" {
		r.APIKey, r.HasAPIKey = *in.APIKey, true
	}
	if in.Since != nil {
		r.Since = *in.Since
	}
	r.Snapshot = in.Snapshot != nil && *in.Snapshot
	r.Filter = in.Filter
	if len(in.Channels) > 0 {
		r.Channels = make([]string, len(in.Channels))
		for i, c := range in.Channels {
			if c == nil {
				return Request{}, invalid(errors.New("null channel"))
			}
			r.Channels[i] = *c
		}
	}
	return r, nil
}

// Subscribed describes an accepted subscription (SPEC §4 step 3, §7).
type Subscribed struct {
	ID       int      // subscriptionId, counted per connection from 1
	Channels []string // the resolved names
	// Resumed: the client asked to resume (since or Last-Event-ID), and
	// only then is Recovered sent: false means the log could not give
	// every event after that point and the client must refetch state.
	Resumed   bool
	Recovered bool
	// Snapshot: the current rows come first (SPEC §10).
	Snapshot bool
}

// AppendBroadcastA appends the protocol A frame of e (SPEC §4 step 4):
// {"type":"broadcast","id":…,"channel":…,"event":…,"payload":…,"old":…},
// old left out when e has none.
func AppendBroadcastA(dst []byte, e Event) []byte {
	dst = append(dst, `{"type":"broadcast","id":`...)
	dst = appendString(dst, e.Pos)
	dst = append(dst, `,"channel":`...)
	dst = appendString(dst, e.Channel)
	dst = append(dst, `,"event":`...)
	dst = appendString(dst, e.Op)
	dst = append(dst, `,"payload":`...)
	dst = appendRaw(dst, e.Payload)
	if e.hasOld() {
		dst = append(dst, `,"old":`...)
		dst = append(dst, e.Old...)
	}
	return append(dst, '}')
}

// AppendSubscribedA appends {"type":"subscribed","subscriptionId":…,
// "channels":[…]}, with "recovered" when s.Resumed.
func AppendSubscribedA(dst []byte, s Subscribed) []byte {
	dst = append(dst, `{"type":"subscribed",`...)
	return append(appendSubscribed(dst, s), '}')
}

// appendSubscribed appends the members shared by protocol A's subscribed
// frame and the SSE connected event.
func appendSubscribed(dst []byte, s Subscribed) []byte {
	dst = append(dst, `"subscriptionId":`...)
	dst = appendInt(dst, int64(s.ID))
	dst = append(dst, `,"channels":`...)
	dst = appendStrings(dst, s.Channels)
	if s.Resumed {
		dst = append(dst, `,"recovered":`...)
		dst = appendBool(dst, s.Recovered)
	}
	if s.Snapshot {
		dst = append(dst, `,"snapshot":true`...)
	}
	return dst
}

// AppendSnapshotA appends one current row of a snapshot (SPEC §10):
// {"type":"snapshot","channel":…,"payload":…}.
func AppendSnapshotA(dst []byte, channel string, payload []byte) []byte {
	dst = append(dst, `{"type":"snapshot","channel":`...)
	dst = appendString(dst, channel)
	dst = append(dst, `,"payload":`...)
	dst = appendRaw(dst, payload)
	return append(dst, '}')
}

// AppendSnapshotEndA appends {"type":"snapshot_end","id":…}: the rows are
// all sent, and pos is where the changes continue.
func AppendSnapshotEndA(dst []byte, pos string) []byte {
	dst = append(dst, `{"type":"snapshot_end","id":`...)
	dst = appendString(dst, pos)
	return append(dst, '}')
}

// AppendUnsubscribedA appends {"type":"unsubscribed","subscriptionId":id}.
func AppendUnsubscribedA(dst []byte, id int) []byte {
	dst = append(dst, `{"type":"unsubscribed","subscriptionId":`...)
	dst = appendInt(dst, int64(id))
	return append(dst, '}')
}

// AppendPongA appends {"type":"pong"}, the answer to a ping.
func AppendPongA(dst []byte) []byte { return append(dst, `{"type":"pong"}`...) }

// AppendHeartbeatA appends {"type":"heartbeat"}, sent every
// HUB_HEARTBEAT_INTERVAL (SPEC §4 step 5).
func AppendHeartbeatA(dst []byte) []byte { return append(dst, `{"type":"heartbeat"}`...) }

// AppendErrorA appends {"type":"error","message":msg} (SPEC §4.1).
func AppendErrorA(dst []byte, msg string) []byte {
	dst = append(dst, `{"type":"error","message":`...)
	dst = appendString(dst, msg)
	return append(dst, '}')
}
