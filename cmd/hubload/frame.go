package main

import (
	"bytes"
	"time"
)

// broadcastPrefix starts every protocol A broadcast frame (SPEC §4 step 4,
// hub/wire.AppendBroadcastA); the position follows.
var broadcastPrefix = []byte(`{"type":"broadcast","id":"`)

var payloadKey = []byte(`"payload":`)

// scanKeys name the payload fields the scanner reads, as one server
// spells them.
type scanKeys struct {
	stamp, tenant []byte // tenant nil on a global channel
	row, seq      []byte // see delivery
}

var (
	hubScoreKeys = scanKeys{stamp: []byte(`"updatedAt":`), row: []byte(`"fixtureId":`), seq: []byte(`"currentMinute":`)}
	hubOrderKeys = scanKeys{stamp: []byte(`"matchedAt":`), tenant: []byte(`"client":`), row: []byte(`"orderId":`), seq: []byte(`"matchedStake":`)}
	pgScoreKeys  = scanKeys{stamp: []byte(`"updated_at":`), row: []byte(`"fixture_id":`), seq: []byte(`"current_minute":`)}
	pgOrderKeys  = scanKeys{stamp: []byte(`"matched_at":`), tenant: []byte(`"client":`), row: []byte(`"order_id":`), seq: []byte(`"matched_stake":`)}
)

// hubScan decodes protocol A frames by scanning them (-decode scan).
func hubScan(k scanKeys) decodeFunc {
	return func(msg []byte, deliver func(delivery)) ([]byte, error) {
		if d, ok := parseBroadcast(msg, k); ok {
			deliver(d)
		}
		return nil, nil
	}
}

// parseBroadcast scans frame: no full JSON decode, only the fields the
// measurement needs. ok is false for every other frame type.
func parseBroadcast(frame []byte, k scanKeys) (d delivery, ok bool) {
	if !bytes.HasPrefix(frame, broadcastPrefix) {
		return d, false
	}
	rest := frame[len(broadcastPrefix):]
	if d.pos.xid, rest, ok = digits(rest); !ok || len(rest) == 0 || rest[0] != '-' {
		return d, false
	}
	if d.pos.id, rest, ok = digits(rest[1:]); !ok {
		return d, false
	}
	// The payload comes before "old", which holds the previous values.
	if i := bytes.Index(rest, payloadKey); i >= 0 {
		scanPayload(&d, rest[i+len(payloadKey):], k)
	}
	return d, true
}

// cfPushPrefix starts a Centrifugo push; the channel comes first, then
// "pub" for a publication.
var (
	cfPushPrefix = []byte(`{"push":{"channel":`)
	cfPubKey     = []byte(`"pub":`)
)

// cfScan decodes Centrifugo messages by scanning each of their replies.
func cfScan(k scanKeys) decodeFunc {
	return func(msg []byte, deliver func(delivery)) ([]byte, error) {
		var reply []byte
		for line := range bytes.SplitSeq(msg, []byte("\n")) {
			if bytes.Equal(line, cfPing) {
				reply = cfPing
				continue
			}
			if !bytes.HasPrefix(line, cfPushPrefix) {
				continue
			}
			if i := bytes.Index(line, cfPubKey); i >= 0 {
				var d delivery
				scanPayload(&d, line[i+len(cfPubKey):], k)
				deliver(d)
			}
		}
		return reply, nil
	}
}

// scanPayload fills d from the first occurrence of each key in payload.
func scanPayload(d *delivery, payload []byte, k scanKeys) {
	if s := stringAfter(payload, k.stamp); s != nil {
		d.stamp, _ = parseStamp(s)
	}
	if k.tenant != nil {
		d.tenant = string(stringAfter(payload, k.tenant))
	}
	var rowOK, seqOK bool
	if s := stringAfter(payload, k.row); s != nil {
		n, ok := bytes.CutPrefix(s, []byte("hubload-"))
		var u uint64
		u, n, rowOK = digits(n)
		rowOK = rowOK && ok && len(n) == 0
		d.row = int64(u)
	} else {
		d.row, rowOK = numberAfter(payload, k.row)
	}
	d.seq, seqOK = numberAfter(payload, k.seq)
	d.hasSeq = rowOK && seqOK
}

// digits reads a run of decimal digits from the front of s.
func digits(s []byte) (n uint64, rest []byte, ok bool) {
	i := 0
	for ; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
		n = n*10 + uint64(s[i]-'0')
	}
	return n, s[i:], i > 0 && i <= 20
}

// numberAfter returns the non-negative integer that follows the first key
// in s (a fraction is ignored).
func numberAfter(s, key []byte) (int64, bool) {
	i := bytes.Index(s, key)
	if i < 0 {
		return 0, false
	}
	n, _, ok := digits(bytes.TrimLeft(s[i+len(key):], " "))
	return int64(n), ok
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

// parseStamp reads UTC timestamps, "2006-01-02T15:04:05Z" as the hub
// sends them or "…+00:00" as to_jsonb writes them in UTC, with an optional
// fraction of up to 9 digits, without time.Parse's generality.
func parseStamp(s []byte) (time.Time, bool) {
	end := len(s) - 1 // the zone: Z
	if bytes.HasSuffix(s, []byte("+00:00")) {
		end = len(s) - 6
	} else if len(s) == 0 || s[end] != 'Z' {
		return time.Time{}, false
	}
	if end < 19 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':' {
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
	if frac := s[19:end]; len(frac) > 0 {
		if frac[0] != '.' || len(frac) < 2 || len(frac) > 10 {
			return time.Time{}, false
		}
		v, ok := num(20, end)
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
