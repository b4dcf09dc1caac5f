package main

import (
	"bytes"
	"time"
)

// broadcastPrefix starts every protocol A broadcast frame (SPEC §4 step 4,
// hub/wire.AppendBroadcastA); the position follows.
var broadcastPrefix = []byte(`{"type":"broadcast","id":"`)

var payloadKey = []byte(`"payload":`)

// broadcast is what a client takes from a frame: no full JSON decode, only
// a scan for the fields the measurement needs.
type broadcast struct {
	Xid, ID uint64
	Stamp   time.Time // the writer's clock_timestamp(); zero when absent
	Tenant  []byte    // the payload's "client"; nil unless asked for
}

// parseBroadcast scans frame. ok is false for every other frame type.
// stampKey (e.g. `"updatedAt":`) names the payload's timestamp, tenantKey
// (`"client":`, or nil) its tenant.
func parseBroadcast(frame, stampKey, tenantKey []byte) (b broadcast, ok bool) {
	if !bytes.HasPrefix(frame, broadcastPrefix) {
		return b, false
	}
	rest := frame[len(broadcastPrefix):]
	if b.Xid, rest, ok = digits(rest); !ok || len(rest) == 0 || rest[0] != '-' {
		return b, false
	}
	if b.ID, rest, ok = digits(rest[1:]); !ok {
		return b, false
	}
	// The payload comes before "old", which holds the previous stamp.
	i := bytes.Index(rest, payloadKey)
	if i < 0 {
		return b, true
	}
	payload := rest[i+len(payloadKey):]
	if s := stringAfter(payload, stampKey); s != nil {
		b.Stamp, _ = parseStamp(s)
	}
	if tenantKey != nil {
		b.Tenant = stringAfter(payload, tenantKey)
	}
	return b, true
}

// digits reads a run of decimal digits from the front of s.
func digits(s []byte) (n uint64, rest []byte, ok bool) {
	i := 0
	for ; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
		n = n*10 + uint64(s[i]-'0')
	}
	return n, s[i:], i > 0 && i <= 20
}

// stringAfter returns the string value (without quotes, escapes left as
// they are) that follows the first key in s, or nil.
func stringAfter(s, key []byte) []byte {
	i := bytes.Index(s, key)
	if i < 0 {
		return nil
	}
	s = bytes.TrimLeft(s[i+len(key):], " ")
	if len(s) == 0 || s[0] != '"' {
		return nil
	}
	end := bytes.IndexByte(s[1:], '"')
	if end < 0 {
		return nil
	}
	return s[1 : 1+end]
}

// parseStamp reads the wire's UTC timestamps, "2006-01-02T15:04:05Z" with
// an optional fraction of up to 9 digits, without time.Parse's generality.
func parseStamp(s []byte) (time.Time, bool) {
	if len(s) < 20 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':' || s[len(s)-1] != 'Z' {
		return time.Time{}, false
	}
	num := func(a, b int) (int, bool) {
		n := 0
		for _, c := range s[a:b] {
			if c < '0' || c > '9' {
				return 0, false
			}
			n = n*10 + int(c-'0')
		}
		return n, true
	}
	var f [6]int
	for k, r := range [6][2]int{{0, 4}, {5, 7}, {8, 10}, {11, 13}, {14, 16}, {17, 19}} {
		v, ok := num(r[0], r[1])
		if !ok {
			return time.Time{}, false
		}
		f[k] = v
	}
	nsec := 0
	if frac := s[19 : len(s)-1]; len(frac) > 0 {
		if frac[0] != '.' || len(frac) < 2 || len(frac) > 10 {
			return time.Time{}, false
		}
		v, ok := num(20, len(s)-1)
		if !ok {
			return time.Time{}, false
		}
		for range 10 - len(frac) {
			v *= 10
		}
		nsec = v
	}
	return time.Date(f[0], time.Month(f[1]), f[2], f[3], f[4], f[5], nsec, time.UTC), true
}
