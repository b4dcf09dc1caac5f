package main

import (
	"testing"
	"time"
)

func TestParseBroadcast(t *testing.T) {
	frame := []byte(`{"type":"broadcast","id":"812-4471","channel":"orders","event":"UPDATE",` +
		`"payload":{"client": "hubload-t007", "orderId": 900000003, "matchedAt": "2026-12-01T14:37:20.12345Z", "matchedStake": 12},` +
		`"old":{"matchedAt": "2026-12-01T14:37:19.5Z", "matchedStake": 11}}`)
	d, ok := parseBroadcast(frame, hubOrderKeys)
	if !ok {
		t.Fatal("not a broadcast")
	}
	want := delivery{pos: position{812, 4471}, stamp: time.Date(2026, 12, 1, 14, 37, 20, 123450000, time.UTC),
		tenant: "hubload-t007", row: 900000003, seq: 12, hasSeq: true}
	if d != want {
		t.Fatalf("got %+v, want %+v", d, want)
	}
	if _, ok := parseBroadcast([]byte(`{"type":"heartbeat"}`), hubScoreKeys); ok {
		t.Fatal("a heartbeat taken for a broadcast")
	}
}

func TestCFScan(t *testing.T) {
	msg := []byte(`{"push":{"channel":"scores","pub":{"data":{"live": true, "fixture_id": "hubload-17", "updated_at": "2026-12-04T19:04:02.816697+00:00", "current_minute": 41}}}}` +
		"\n{}\n" + `{"push":{"channel":"scores","pub":{"data":{"fixture_id": "hubload-17", "updated_at": "2026-12-04T19:04:02.9+00:00", "current_minute": 42}}}}`)
	var got []delivery
	reply, err := cfScan(pgScoreKeys)(msg, func(d delivery) { got = append(got, d) })
	if err != nil || string(reply) != "{}" {
		t.Fatalf("reply %q, %v; want the pong", reply, err)
	}
	if len(got) != 2 || got[0].row != 17 || got[0].seq != 41 || !got[0].hasSeq || got[1].seq != 42 ||
		!got[0].stamp.Equal(time.Date(2026, 12, 4, 19, 4, 2, 816697000, time.UTC)) {
		t.Fatalf("got %+v", got)
	}
}

func TestParseStamp(t *testing.T) {
	for in, want := range map[string]time.Time{
		"2026-01-02T03:04:05Z":             time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
		"2026-01-02T03:04:05.1Z":           time.Date(2026, 1, 2, 3, 4, 5, 100000000, time.UTC),
		"2026-01-02T03:04:05.123456789Z":   time.Date(2026, 1, 2, 3, 4, 5, 123456789, time.UTC),
		"2026-01-02T03:04:05.123456+00:00": time.Date(2026, 1, 2, 3, 4, 5, 123456000, time.UTC),
		"2026-01-02T03:04:05+00:00":        time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
	} {
		got, ok := parseStamp([]byte(in))
		if !ok || !got.Equal(want) {
			t.Errorf("parseStamp(%q) = %v, %v", in, got, ok)
		}
	}
	for _, in := range []string{"", "Z", "+00:00", "2026-01-02 03:04:05Z", "2026-01-02T03:04:05.Z", "2026-01-02T03:04:05+01:00", "2026-01-02T03:04+00:00"} {
		if _, ok := parseStamp([]byte(in)); ok {
			t.Errorf("parseStamp(%q) accepted", in)
		}
	}
}
