package main

import (
	"testing"
	"time"
)

func TestParseBroadcast(t *testing.T) {
	frame := []byte(`{"type":"broadcast","id":"812-4471","channel":"orders","event":"UPDATE",` +
		`"payload":{"client": "hubload-t007", "orderId": 3, "matchedAt": "2026-12-01T14:37:20.12345Z"},` +
		`"old":{"matchedAt": "2026-12-01T14:37:19.5Z"}}`)
	b, ok := parseBroadcast(frame, []byte(`"matchedAt":`), []byte(`"client":`))
	if !ok {
		t.Fatal("not a broadcast")
	}
	want := time.Date(2026, 12, 1, 14, 37, 20, 123450000, time.UTC)
	if b.Xid != 812 || b.ID != 4471 || !b.Stamp.Equal(want) || string(b.Tenant) != "hubload-t007" {
		t.Fatalf("got %+v", b)
	}
	if _, ok := parseBroadcast([]byte(`{"type":"heartbeat"}`), nil, nil); ok {
		t.Fatal("a heartbeat taken for a broadcast")
	}
}

func TestParseStamp(t *testing.T) {
	for in, want := range map[string]time.Time{
		"2026-01-02T03:04:05Z":           time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
		"2026-01-02T03:04:05.1Z":         time.Date(2026, 1, 2, 3, 4, 5, 100000000, time.UTC),
		"2026-01-02T03:04:05.123456789Z": time.Date(2026, 1, 2, 3, 4, 5, 123456789, time.UTC),
	} {
		got, ok := parseStamp([]byte(in))
		if !ok || !got.Equal(want) {
			t.Errorf("parseStamp(%q) = %v, %v", in, got, ok)
		}
	}
	for _, in := range []string{"", "2026-01-02 03:04:05Z", "2026-01-02T03:04:05.Z", "2026-01-02T03:04:05+01:00"} {
		if _, ok := parseStamp([]byte(in)); ok {
			t.Errorf("parseStamp(%q) accepted", in)
		}
	}
}
