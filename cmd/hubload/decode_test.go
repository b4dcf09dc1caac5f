package main

import (
	"testing"
	"time"
)

func TestHubJSON(t *testing.T) {
	t.Parallel()
	frame := []byte(`{"type":"broadcast","id":"812-4471","channel":"orders","event":"UPDATE",` +
		`"payload":{"client": "hubload-t007", "orderId": 900000003, "accountId": "acct-3", "orderCents": 250, ` +
		`"matchedAt": "2026-12-01T14:37:20.12345Z", "matchedStake": 12, "createdAt": "2026-12-01T14:00:00Z"},` +
		`"old":{"matchedAt": "2026-12-01T14:37:19.5Z", "matchedStake": 11}}`)
	var got []delivery
	deliver := func(d delivery) { got = append(got, d) }
	reply, err := hubJSON[orderRow]()(frame, deliver)
	if err != nil || reply != nil {
		t.Fatalf("reply %q, %v", reply, err)
	}
	want := delivery{pos: position{812, 4471}, stamp: time.Date(2026, 12, 1, 14, 37, 20, 123450000, time.UTC),
		tenant: "hubload-t007", row: 900000003, seq: 12, hasSeq: true}
	if len(got) != 1 || got[0] != want {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	if _, err := hubJSON[orderRow]()([]byte(`{"type":"heartbeat"}`), deliver); err != nil || len(got) != 1 {
		t.Fatalf("heartbeat: %v, %d deliveries", err, len(got))
	}
	if _, err := hubJSON[orderRow]()([]byte(`{"type":"broadcast","id":"812-4471","payload":{"orderId":"x"}}`), deliver); err == nil {
		t.Fatal("a payload of the wrong shape decoded")
	}
}

func TestCFJSONTakesEveryReplyOfAFrame(t *testing.T) {
	t.Parallel()
	// What Centrifugo batches into one frame: two publications around a
	// ping, each reply on its own line.
	msg := []byte(`{"push":{"channel":"orders:#hubload-t001","pub":{"data":{"client": "hubload-t001", "order_id": 900000001, ` +
		`"matched_at": "2026-12-04T19:04:02.816697+00:00", "matched_stake": 7, "order_cents": 250}}}}` + "\n" +
		`{}` + "\n" +
		`{"push":{"channel":"orders:#hubload-t001","pub":{"data":{"client": "hubload-t001", "order_id": 900000011, ` +
		`"matched_at": "2026-12-04T19:04:02.9+00:00", "matched_stake": 3},"offset":5}}}`)
	var got []delivery
	reply, err := cfJSON[orderRowPG]()(msg, func(d delivery) { got = append(got, d) })
	if err != nil || string(reply) != "{}" {
		t.Fatalf("reply %q, %v; want the pong", reply, err)
	}
	want := []delivery{
		{stamp: time.Date(2026, 12, 4, 19, 4, 2, 816697000, time.UTC), tenant: "hubload-t001", row: 900000001, seq: 7, hasSeq: true},
		{stamp: time.Date(2026, 12, 4, 19, 4, 2, 900000000, time.UTC), tenant: "hubload-t001", row: 900000011, seq: 3, hasSeq: true},
	}
	if len(got) != len(want) {
		t.Fatalf("got %+v", got)
	}
	for i := range want {
		if !got[i].stamp.Equal(want[i].stamp) {
			t.Errorf("reply %d: stamp %v, want %v", i, got[i].stamp, want[i].stamp)
		}
		got[i].stamp = want[i].stamp // the zone's representation differs
		if got[i] != want[i] {
			t.Errorf("reply %d: %+v, want %+v", i, got[i], want[i])
		}
	}
}

func TestCFJSONReportsABadReplyAndKeepsTheOthers(t *testing.T) {
	t.Parallel()
	msg := []byte(`{"id":2,"subscribe":{}}` + "\n" + `{"push":` + "\n" +
		`{"push":{"channel":"scores","pub":{"data":{"fixture_id": "hubload-3", "updated_at": "2026-12-04T19:04:02+00:00", "current_minute": 9}}}}`)
	var got []delivery
	reply, err := cfJSON[scoreRowPG]()(msg, func(d delivery) { got = append(got, d) })
	if err == nil || reply != nil {
		t.Fatalf("reply %q, err %v; want an error and no reply", reply, err)
	}
	if len(got) != 1 || got[0].row != 3 || got[0].seq != 9 {
		t.Fatalf("got %+v", got)
	}
}

func TestParsePosition(t *testing.T) {
	t.Parallel()
	if p, ok := parsePosition("812-4471"); !ok || p != (position{812, 4471}) {
		t.Fatalf("parsePosition = %v, %v", p, ok)
	}
	for _, s := range []string{"", "812", "812-", "-4471", "a-1"} {
		if _, ok := parsePosition(s); ok {
			t.Errorf("parsePosition(%q) accepted", s)
		}
	}
	if !(position{2, 1}).after(position{1, 9}) || (position{1, 9}).after(position{1, 9}) {
		t.Fatal("after")
	}
}

// FuzzDecoders: the frames come from a server under load; no message may
// crash a client, whichever decoder reads it.
func FuzzDecoders(f *testing.F) {
	for _, seed := range []string{
		`{"type":"broadcast","id":"812-4471","payload":{"fixtureId":"hubload-1","currentMinute":3,"updatedAt":"2026-12-01T14:37:20Z"}}`,
		`{"type":"broadcast","id":"1-","payload":{"orderId":`, `{"type":"heartbeat"}`,
		"{}\n{\"push\":{\"channel\":\"scores\",\"pub\":{\"data\":{\"fixture_id\":\"hubload-\",\"current_minute\":}}}}",
		`{"push":{"channel":"orders:#t","pub":{"data":{"order_id":1,"matched_at":"+00:00"}}}}`, "\n\n", "",
	} {
		f.Add([]byte(seed))
	}
	decoders := []decodeFunc{
		hubJSON[scoreRow](), hubJSON[orderRow](), hubScan(hubScoreKeys), hubScan(hubOrderKeys),
		cfJSON[scoreRowPG](), cfJSON[orderRowPG](), cfScan(pgScoreKeys), cfScan(pgOrderKeys),
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		for _, d := range decoders {
			_, _ = d(msg, func(delivery) {})
		}
	})
}
