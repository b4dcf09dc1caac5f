package wire

import "bytes"

// SSE framing follows seed 000: "event: <name>" and one "data: <json>"
// line, then a blank line (SPEC §7).

// AppendSSEBroadcast appends the broadcast event of e:
// "id: <pos>\nevent: broadcast\ndata: {"channel":…,"event":…,"payload":…,"old":…}\n\n",
// old left out when e has none. The id lets EventSource resume with
// Last-Event-ID.
func AppendSSEBroadcast(dst []byte, e Event) []byte {
	dst = append(dst, "id: "...)
	dst = appendSSELine(dst, e.Pos)
	dst = append(dst, "\nevent: broadcast\ndata: {\"channel\":"...)
	dst = appendString(dst, e.Channel)
	dst = append(dst, `,"event":`...)
	dst = appendString(dst, e.Op)
	dst = append(dst, `,"payload":`...)
	dst = appendSSERaw(dst, e.Payload)
	if e.hasOld() {
		dst = append(dst, `,"old":`...)
		dst = appendSSERaw(dst, e.Old)
	}
	return append(dst, "}\n\n"...)
}

// AppendSSESnapshot appends one current row of a snapshot (SPEC §10):
// event snapshot, data {"channel":…,"payload":…}, with no id: a snapshot
// row is no resume point.
func AppendSSESnapshot(dst []byte, channel string, payload []byte) []byte {
	dst = append(dst, "event: snapshot\ndata: {\"channel\":"...)
	dst = appendString(dst, channel)
	dst = append(dst, `,"payload":`...)
	dst = appendSSERaw(dst, payload)
	return append(dst, "}\n\n"...)
}

// AppendSSESnapshotEnd appends the snapshot_end event, with pos as its id
// (EventSource resumes from it) and in its data {"id":…}.
func AppendSSESnapshotEnd(dst []byte, pos string) []byte {
	dst = append(dst, "id: "...)
	dst = appendSSELine(dst, pos)
	dst = append(dst, "\nevent: snapshot_end\ndata: {\"id\":"...)
	dst = appendString(dst, pos)
	return append(dst, "}\n\n"...)
}

// AppendSSEConnected appends the connected event:
// data {"node_id":…,"subscriptionId":…,"channels":[…]}, with "recovered"
// when s.Resumed.
func AppendSSEConnected(dst []byte, nodeID string, s Subscribed) []byte {
	dst = append(dst, "event: connected\ndata: {\"node_id\":"...)
	dst = appendString(dst, nodeID)
	dst = append(dst, ',')
	dst = appendSubscribed(dst, s)
	return append(dst, "}\n\n"...)
}

// AppendSSEError appends the error event, data {"message":…,"code":…},
// where code is the close code protocol A would use; the stream ends
// after it.
func AppendSSEError(dst []byte, msg string, code int) []byte {
	dst = append(dst, "event: error\ndata: {\"message\":"...)
	dst = appendString(dst, msg)
	dst = append(dst, `,"code":`...)
	dst = appendInt(dst, int64(code))
	return append(dst, "}\n\n"...)
}

// AppendSSEKeepAlive appends a comment, which EventSource ignores, sent
// every 15 s so that proxies keep the stream open.
func AppendSSEKeepAlive(dst []byte) []byte { return append(dst, ": keep-alive\n\n"...) }

// appendSSELine appends s without CR and LF, which would end the field.
func appendSSELine(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c != '\r' && c != '\n' {
			dst = append(dst, c)
		}
	}
	return dst
}

// appendSSERaw appends a JSON value on one line. Valid JSON has CR and LF
// only as whitespace between tokens (inside strings they are escaped), so
// replacing them with spaces keeps the value and the data field intact.
func appendSSERaw(dst, raw []byte) []byte {
	if bytes.IndexByte(raw, '\n') < 0 && bytes.IndexByte(raw, '\r') < 0 {
		return appendRaw(dst, raw)
	}
	for _, c := range raw {
		if c == '\r' || c == '\n' {
			c = ' '
		}
		dst = append(dst, c)
	}
	return dst
}
