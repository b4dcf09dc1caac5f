package wire_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hubdev/hub/hub/wire"
)

// Seeds: the spec's and the seeds' example frames.
var (
	seedFramesA = []string{
		`{"type":"subscribe","apiKey":"3f2b8c1e-9a4d-4e7f-8b6a-1c2d3e4f5a6b","channels":["orders","bets","accounts","scores","emergency"],"since":"7421-123"}`,
		`{"type": "subscribe", "apiKey": "your-uuid-api-key", "channels": ["orders", "bets", "scores"]}`,
		`{"type":"subscribe","channels":[],"since":null}`,
		`{"type":"subscribe","apiKey":null,"channels":null,"since":""}`,
		`{"type":"ping"}`, `{"type": "unsubscribe"}`, `{"type":"broadcast"}`,
		`{"type":"subscribe","channels":[null]}`, `not json`, `[]`, `null`,
	}
	seedFramesB = []string{
		`{"msg_type":"subscribe","account":"a1,a2","contract":"orders,bets","action_name":"UPDATE"}`,
		`{"msg_type": "subscribe", "account": "iameoschatio", "contract": "eosio.token", "action_name": "transfer"}`,
		`{"msg_type":"unsubscribe","account":"iameoschatio","contract":"eosio.token","action_name":""}`,
		`{"msg_type":"subscribe","account":"*","contract":"emergency"}`,
		`{"msg_type":"subscribe","account":" a , ,b","contract":""}`,
		`{"msg_type":"unsubscribe","account":"a,b","contract":"orders"}`,
		`{"msg_type":"heartbeat"}`, `{"msg_type":"subscribe","account":1}`, `{`,
		`{"msg_type":"subscribe","account":"a1,a2,a3,a4,a5,a6","contract":"orders"}`,
		`{"msg_type":"subscribe","account":"a,a,a,a,a,a,a","contract":"c1,c2,c3,c4,c5,c6"}`,
	}
)

func FuzzDecodeA(f *testing.F) {
	for _, s := range seedFramesA {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := wire.DecodeA(data)
		if err != nil {
			require.ErrorIs(t, err, wire.ErrInvalidMessage)
			require.Equal(t, wire.Request{}, r)
			return
		}
		require.Contains(t, []string{wire.TypeSubscribe, wire.TypeUnsubscribe, wire.TypePing}, r.Type)
		require.Equal(t, r.HasAPIKey, r.APIKey != "")
		require.True(t, r.Channels == nil || len(r.Channels) > 0)
		again, err := wire.DecodeA(encodeRequest(t, r))
		require.NoError(t, err)
		require.Equal(t, r, again)
	})
}

func FuzzDecodeSSE(f *testing.F) {
	for _, s := range seedFramesA {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := wire.DecodeSSE(data)
		if err != nil {
			require.ErrorIs(t, err, wire.ErrInvalidMessage)
			return
		}
		require.Equal(t, wire.TypeSubscribe, r.Type)
		again, err := wire.DecodeSSE(encodeRequest(t, r))
		require.NoError(t, err)
		require.Equal(t, r, again)
	})
}

// encodeRequest writes r back as a client would send it.
func encodeRequest(t *testing.T, r wire.Request) []byte {
	m := map[string]any{"type": r.Type, "since": r.Since}
	if r.HasAPIKey {
		m["apiKey"] = r.APIKey
	}
	if r.Channels != nil {
		m["channels"] = r.Channels
	}
	b, err := json.Marshal(m)
	require.NoError(t, err)
	return b
}

func FuzzDecodeB(f *testing.F) {
	for _, s := range seedFramesB {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := wire.DecodeB(data)
		switch {
		case errors.Is(err, wire.ErrInvalidMessage):
			require.Equal(t, wire.RequestB{}, r)
			return
		case err != nil:
			require.True(t, errors.Is(err, wire.ErrAccountRequired) || errors.Is(err, wire.ErrContractRequired) ||
				errors.Is(err, wire.ErrUnsubscribeOne) || errors.Is(err, wire.ErrTooManyAccounts) ||
				errors.Is(err, wire.ErrTooManyContracts), "%v", err)
			require.Equal(t, wire.RequestB{Type: r.Type}, r)
			require.Contains(t, []string{wire.MsgTypeSubscribe, wire.MsgTypeUnsubscribe}, r.Type)
			return
		}
		require.Contains(t, []string{wire.MsgTypeSubscribe, wire.MsgTypeUnsubscribe}, r.Type)
		require.NotEmpty(t, r.Accounts)
		require.NotEmpty(t, r.Contracts)
		// No request holds more than a connection may (issue 12).
		require.LessOrEqual(t, len(r.Accounts), wire.MaxAccountsB)
		require.LessOrEqual(t, len(r.Contracts), wire.MaxContractsB)
		if r.Type == wire.MsgTypeUnsubscribe {
			require.Len(t, r.Accounts, 1)
			require.Len(t, r.Contracts, 1)
		}
		for _, list := range [][]string{r.Accounts, r.Contracts} {
			seen := map[string]bool{}
			for _, item := range list {
				require.NotEmpty(t, item)
				require.NotContains(t, item, ",")
				require.Equal(t, strings.TrimSpace(item), item)
				require.False(t, seen[item], "repeated %q", item)
				seen[item] = true
			}
		}
		require.Equal(t, strings.TrimSpace(r.Action), r.Action)
		b, err := json.Marshal(map[string]string{
			"msg_type":    r.Type,
			"account":     strings.Join(r.Accounts, ","),
			"contract":    strings.Join(r.Contracts, ","),
			"action_name": r.Action,
		})
		require.NoError(t, err)
		again, err := wire.DecodeB(b)
		require.NoError(t, err)
		require.Equal(t, r, again)
	})
}

// FuzzSplitListMax: the capped split is the split cut at most, and says
// when it cut.
func FuzzSplitListMax(f *testing.F) {
	f.Add("a,b, a,,c", 2)
	f.Add(" orders ,\tscores\n,orders", 5)
	f.Add("", 0)
	f.Add("x", -1)
	f.Fuzz(func(t *testing.T, s string, most int) {
		all := wire.SplitList(s)
		got, ok := wire.SplitListMax(s, most)
		if most < 0 || len(all) <= most {
			require.True(t, ok)
			require.Equal(t, all, got)
			return
		}
		require.False(t, ok)
		require.Len(t, got, most)
		if most > 0 {
			require.Equal(t, all[:most], got)
		}
	})
}

func FuzzCanonicalKey(f *testing.F) {
	for _, s := range []string{
		"3f2b8c1e-9a4d-4e7f-8b6a-1c2d3e4f5a6b", "3F2B8C1E-9A4D-4E7F-8B6A-1C2D3E4F5A6B",
		"a9564ebc3289b7a14551baf8ad5ec60a", "your-uuid-api-key", "", "3f2b8c1e-9a4d-4e7f-8b6a-1c2d3e4f5a6\xff",
	} {
		f.Add(s, true)
		f.Add(s, false)
	}
	f.Fuzz(func(t *testing.T, s string, hex32 bool) {
		key, ok := wire.CanonicalKey(s, hex32)
		if !ok {
			require.Empty(t, key)
			require.False(t, wire.ValidKeyA(s))
			return
		}
		require.Len(t, key, 36)
		require.True(t, wire.ValidKeyA(key))
		require.Equal(t, strings.ToLower(key), key)
		require.Equal(t, strings.ReplaceAll(key, "-", ""), strings.ToLower(strings.ReplaceAll(s, "-", "")))
		require.True(t, wire.ValidKeyA(s) || (hex32 && len(s) == 32))
		again, ok := wire.CanonicalKey(key, false)
		require.True(t, ok)
		require.Equal(t, key, again)
	})
}

// FuzzAppend checks that every event encoder writes valid JSON that
// decodes back to the event, whatever the strings hold, for any valid raw
// payload and old.
func FuzzAppend(f *testing.F) {
	for _, e := range []wire.Event{orderFill, betPlaced, emergencyOn} {
		f.Add(e.Pos, e.ID, e.Channel, e.Op, e.Subject, []byte(e.Payload), []byte(e.Old), e.CreatedAt.UnixNano())
	}
	f.Add("1-2\n", int64(-1), "a\"b\\c\x00\u2028", "\xff", "下半场", []byte("{\n\"a\": \"\\n\"\r\n}"), []byte(" null "), int64(0))
	f.Fuzz(func(t *testing.T, pos string, id int64, channel, op, subject string, payload, old []byte, nanos int64) {
		if !json.Valid(payload) || (len(old) > 0 && !json.Valid(old)) {
			return // the encoders take valid JSON only
		}
		e := wire.Event{
			Pos: pos, ID: id, Channel: channel, Op: op, Subject: subject,
			Payload: payload, Old: old, CreatedAt: time.Unix(0, nanos),
		}
		hasOld := len(old) > 0 && string(bytes.TrimSpace(old)) != "null"

		var a struct {
			Type, ID, Channel, Event string
			Payload                  json.RawMessage
			Old                      json.RawMessage
		}
		frame := wire.AppendBroadcastA(nil, e)
		require.True(t, json.Valid(frame), "%s", frame)
		require.NoError(t, json.Unmarshal(frame, &a))
		require.Equal(t, "broadcast", a.Type)
		require.Equal(t, stdRoundTrip(t, pos), a.ID)
		require.Equal(t, stdRoundTrip(t, channel), a.Channel)
		require.Equal(t, stdRoundTrip(t, op), a.Event)
		requireSameJSON(t, payload, a.Payload)
		requireOld(t, hasOld, old, a.Old)

		var b struct {
			Errno int    `json:"errno"`
			Type  string `json:"msg_type"`
			Data  struct {
				TrxID     string `json:"trx_id"`
				BlockNum  int64  `json:"block_num"`
				Timestamp string `json:"trx_timestamp"`
				Actions   []struct {
					Account, Name string
					Auth          []struct{ Actor, Permission string } `json:"authorization"`
					Data, Old     json.RawMessage
				}
			}
		}
		frame = wire.AppendDataB(nil, e)
		require.True(t, json.Valid(frame), "%s", frame)
		require.NoError(t, json.Unmarshal(frame, &b))
		require.Equal(t, "data", b.Type)
		require.Equal(t, stdRoundTrip(t, pos), b.Data.TrxID)
		require.Equal(t, id, b.Data.BlockNum)
		require.Equal(t, e.CreatedAt.UTC().Format("2006-01-02T15:04:05.000"), b.Data.Timestamp)
		require.Len(t, b.Data.Actions, 1)
		act := b.Data.Actions[0]
		require.Equal(t, stdRoundTrip(t, channel), act.Account)
		require.Equal(t, stdRoundTrip(t, op), act.Name)
		require.Len(t, act.Auth, 1)
		require.Equal(t, stdRoundTrip(t, subject), act.Auth[0].Actor)
		requireSameJSON(t, payload, act.Data)
		requireOld(t, hasOld, old, act.Old)

		ev := parseSSE(t, wire.AppendSSEBroadcast(nil, e))
		require.Equal(t, strings.NewReplacer("\r", "", "\n", "").Replace(pos), ev.id)
		require.Equal(t, "broadcast", ev.event)
		var s struct {
			Channel, Event string
			Payload, Old   json.RawMessage
		}
		require.True(t, json.Valid([]byte(ev.data)), "%s", ev.data)
		require.NoError(t, json.Unmarshal([]byte(ev.data), &s))
		require.Equal(t, stdRoundTrip(t, channel), s.Channel)
		require.Equal(t, stdRoundTrip(t, op), s.Event)
		requireSameJSON(t, payload, s.Payload)
		requireOld(t, hasOld, old, s.Old)
	})
}

func requireSameJSON(t *testing.T, want, got []byte) {
	t.Helper()
	var w, g bytes.Buffer
	require.NoError(t, json.Compact(&w, want))
	require.NoError(t, json.Compact(&g, got))
	require.Equal(t, w.String(), g.String())
}

// requireOld checks that old is in the frame when it should be, and that
// otherwise the key is absent: a json.RawMessage field gets "null" for a
// null and stays nil only when the key is missing.
func requireOld(t *testing.T, hasOld bool, old, got []byte) {
	t.Helper()
	if hasOld {
		requireSameJSON(t, old, got)
		return
	}
	require.Nil(t, got)
}
