package wire_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hubdev/hub/hub/wire"
)

func TestAppendDataB(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		e    wire.Event
		want string
	}{
		{"update carries old, time in UTC with milliseconds", orderFill, `{"errno":0,"msg_type":"data","errmsg":"","data":{
			"trx_id":"7421-123","block_num":123,"trx_timestamp":"2026-02-15T10:30:05.007",
			"actions":[{"account":"orders","name":"UPDATE","authorization":[{"actor":"acct-1","permission":"active"}],
			"data":` + string(orderFill.Payload) + `,"old":` + string(orderFill.Old) + `}]}}`},
		{"insert has no old", betPlaced, `{"errno":0,"msg_type":"data","errmsg":"","data":{
			"trx_id":"7422-124","block_num":124,"trx_timestamp":"2026-02-15T10:30:08.000",
			"actions":[{"account":"bets","name":"INSERT","authorization":[{"actor":"acct-1","permission":"active"}],
			"data":` + string(betPlaced.Payload) + `}]}}`},
		{"no subject: empty actor", emergencyOn, `{"errno":0,"msg_type":"data","errmsg":"","data":{
			"trx_id":"9000-200","block_num":200,"trx_timestamp":"2026-02-15T10:30:00.000",
			"actions":[{"account":"emergency","name":"UPDATE","authorization":[{"actor":"","permission":"active"}],
			"data":` + string(emergencyOn.Payload) + `,"old":{"emergency":false}}]}}`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			requireFrame(t, tt.want, wire.AppendDataB(nil, tt.e))
		})
	}
}

func TestAppendDataBGolden(t *testing.T) {
	t.Parallel()
	e := wire.Event{
		Pos: "100-7", ID: 7, Channel: "accounts", Op: "UPDATE", Subject: "a1",
		Payload:   json.RawMessage(`{"accountId":"a1","balance":10.5}`),
		Old:       json.RawMessage(`{"balance":3}`),
		CreatedAt: time.Date(2026, 2, 15, 10, 30, 5, 123_456_789, time.UTC),
	}
	require.Equal(t,
		`{"errno":0,"msg_type":"data","errmsg":"","data":{"trx_id":"100-7","block_num":7,"trx_timestamp":"2026-02-15T10:30:05.123",`+
			`"actions":[{"account":"accounts","name":"UPDATE","authorization":[{"actor":"a1","permission":"active"}],`+
			`"data":{"accountId":"a1","balance":10.5},"old":{"balance":3}}]}}`,
		string(wire.AppendDataB(nil, e)))
}

func TestControlFramesB(t *testing.T) {
	t.Parallel()
	beat := time.Date(2026, 11, 2, 16, 30, 2, 999_000_000, time.FixedZone("CET", 3600))
	for _, tt := range []struct {
		name string
		got  []byte
		want string
	}{
		{"heartbeat in UTC", wire.AppendHeartbeatB(nil, beat),
			`{"errno":0,"msg_type":"heartbeat","errmsg":"","data":{"heart_beat":"2026-11-02 15:30:02"}}`},
		{"forbidden", wire.AppendAuthB(nil, wire.ErrnoForbidden, wire.MsgForbidden),
			`{"errno":403,"msg_type":"auth","errmsg":"Forbidden"}`},
		{"repeat", wire.AppendAuthB(nil, wire.ErrnoRepeat, wire.MsgNoRepeat),
			`{"errno":406,"msg_type":"auth","errmsg":"No repeat connection."}`},
		{"limit", wire.AppendAuthB(nil, wire.ErrnoLimit, wire.MsgConnectionLimit),
			`{"errno":429,"msg_type":"auth","errmsg":"Connection limit exceeded"}`},
		{"invalid message", wire.AppendErrorB(nil, wire.MsgInvalidMessage),
			`{"errno":400,"msg_type":"error","errmsg":"invalid message"}`},
		{"subscribe ok", wire.AppendSubscribeB(nil, ""),
			`{"errno":0,"msg_type":"subscribe","errmsg":"","data":{"subscribe":true,"msg":"ok"}}`},
		{"subscribe refused", wire.AppendSubscribeB(nil, wire.UnknownContract("bogus")),
			`{"errno":400,"msg_type":"subscribe","errmsg":"Unknown contract: bogus","data":{"subscribe":false,"msg":"Unknown contract: bogus"}}`},
		{"unsubscribe ok", wire.AppendUnsubscribeB(nil, ""),
			`{"errno":0,"msg_type":"unsubscribe","errmsg":"","data":{"unsubscribe":true,"msg":"ok"}}`},
		{"unsubscribe refused", wire.AppendUnsubscribeB(nil, wire.ErrUnsubscribeOne.Error()),
			`{"errno":400,"msg_type":"unsubscribe","errmsg":"unsubscribe takes one account and one contract","data":{"unsubscribe":false,"msg":"unsubscribe takes one account and one contract"}}`},
		{"close", wire.AppendCloseB(nil, wire.CloseTryAgain, wire.SlowConsumer("7421-123").Reason),
			`{"errno":1013,"msg_type":"close","errmsg":"slow consumer; resume from 7421-123"}`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			requireFrame(t, tt.want, tt.got)
		})
	}
}

func TestDecodeB(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		in   string
		want wire.RequestB
	}{
		{"seed subscribe", `{"msg_type": "subscribe", "account": "iameoschatio", "contract": "eosio.token", "action_name": "transfer"}`,
			wire.RequestB{Type: "subscribe", Accounts: []string{"iameoschatio"}, Contracts: []string{"eosio.token"}, Action: "transfer"}},
		{"spec subscribe", `{"msg_type":"subscribe","account":"a1,a2","contract":"orders,bets","action_name":"UPDATE"}`,
			wire.RequestB{Type: "subscribe", Accounts: []string{"a1", "a2"}, Contracts: []string{"orders", "bets"}, Action: "UPDATE"}},
		{"lists trimmed, empties and repeats dropped", `{"msg_type":"subscribe","account":" a1 , a1,,a2, ","contract":"orders ,orders","action_name":" INSERT "}`,
			wire.RequestB{Type: "subscribe", Accounts: []string{"a1", "a2"}, Contracts: []string{"orders"}, Action: "INSERT"}},
		{"any account, all actions", `{"msg_type":"subscribe","account":"*","contract":"emergency"}`,
			wire.RequestB{Type: "subscribe", Accounts: []string{"*"}, Contracts: []string{"emergency"}}},
		{"null action", `{"msg_type":"subscribe","account":"*","contract":"scores","action_name":null,"extra":1}`,
			wire.RequestB{Type: "subscribe", Accounts: []string{"*"}, Contracts: []string{"scores"}}},
		{"case kept", `{"msg_type":"subscribe","account":"A1,a1","contract":"Orders","action_name":"update"}`,
			wire.RequestB{Type: "subscribe", Accounts: []string{"A1", "a1"}, Contracts: []string{"Orders"}, Action: "update"}},
		{"seed unsubscribe", `{"msg_type":"unsubscribe","account":"iameoschatio","contract":"eosio.token","action_name":"transfer"}`,
			wire.RequestB{Type: "unsubscribe", Accounts: []string{"iameoschatio"}, Contracts: []string{"eosio.token"}, Action: "transfer"}},
		{"unsubscribe a pair", `{"msg_type":"unsubscribe","account":"a1","contract":"orders","action_name":""}`,
			wire.RequestB{Type: "unsubscribe", Accounts: []string{"a1"}, Contracts: []string{"orders"}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := wire.DecodeB([]byte(tt.in))
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
}

func TestDecodeBRefused(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		in   string
		typ  string
		want error
	}{
		{`{"msg_type":"subscribe","contract":"orders"}`, "subscribe", wire.ErrAccountRequired},
		{`{"msg_type":"subscribe","account":"","contract":"orders"}`, "subscribe", wire.ErrAccountRequired},
		{`{"msg_type":"subscribe","account":" , ","contract":"orders"}`, "subscribe", wire.ErrAccountRequired},
		{`{"msg_type":"subscribe","account":"a1"}`, "subscribe", wire.ErrContractRequired},
		{`{"msg_type":"subscribe","account":"a1","contract":null}`, "subscribe", wire.ErrContractRequired},
		{`{"msg_type":"unsubscribe","contract":"orders"}`, "unsubscribe", wire.ErrAccountRequired},
		{`{"msg_type":"unsubscribe","account":"a1,a2","contract":"orders"}`, "unsubscribe", wire.ErrUnsubscribeOne},
		{`{"msg_type":"unsubscribe","account":"a1","contract":"orders,bets"}`, "unsubscribe", wire.ErrUnsubscribeOne},
		// More than a connection may ever hold (issue 12); repeats count once.
		{`{"msg_type":"subscribe","account":"a1,a2,a3,a4,a5,a6","contract":"orders"}`, "subscribe", wire.ErrTooManyAccounts},
		{`{"msg_type":"subscribe","account":"a1","contract":"c1,c2,c3,c4,c5,c6"}`, "subscribe", wire.ErrTooManyContracts},
		{`{"msg_type":"subscribe","account":"a1,a2,a3,a4,a5,a6","contract":"c1,c2,c3,c4,c5,c6"}`, "subscribe", wire.ErrTooManyAccounts},
		{`{"msg_type":"unsubscribe","account":"a1,a2,a3,a4,a5,a6","contract":"orders"}`, "unsubscribe", wire.ErrUnsubscribeOne},
	} {
		got, err := wire.DecodeB([]byte(tt.in))
		require.ErrorIs(t, err, tt.want, tt.in)
		require.NotErrorIs(t, err, wire.ErrInvalidMessage, tt.in)
		require.Equal(t, wire.RequestB{Type: tt.typ}, got, tt.in)
	}
}

func TestDecodeBInvalid(t *testing.T) {
	t.Parallel()
	for _, in := range []string{
		``, `nope`, `null`, `[]`, `{}`, `{"msg_type":null}`, `{"msg_type":"Subscribe"}`,
		`{"msg_type":"ping"}`, `{"msg_type":"data"}`, `{"msg_type":1}`,
		`{"msg_type":"subscribe","account":["a1"],"contract":"orders"}`,
		`{"msg_type":"subscribe","account":"a1","contract":5}`,
		`{"msg_type":"subscribe","account":"a1","contract":"orders","action_name":true}`,
		`{"msg_type":"subscribe","account":"a1","contract":"orders"}]`,
	} {
		_, err := wire.DecodeB([]byte(in))
		require.ErrorIs(t, err, wire.ErrInvalidMessage, "%s", in)
	}
}

func TestSplitList(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		in   string
		want []string
	}{
		{"", nil},
		{" , ,", nil},
		{"orders", []string{"orders"}},
		{"orders,scores", []string{"orders", "scores"}},
		{" orders ,\tscores\n,orders", []string{"orders", "scores"}},
		{"Orders,orders", []string{"Orders", "orders"}},
	} {
		require.Equal(t, tt.want, wire.SplitList(tt.in), "%q", tt.in)
	}
}

func TestSplitListMax(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		in   string
		most int
		want []string
		ok   bool
	}{
		{"", 0, nil, true},
		{"a", 0, nil, false},
		{"a,a, a", 1, []string{"a"}, true},
		{"a,b,a,b", 2, []string{"a", "b"}, true},
		{"a,b,c", 2, []string{"a", "b"}, false},
		{"a,b,,b,c", -1, []string{"a", "b", "c"}, true},
	} {
		got, ok := wire.SplitListMax(tt.in, tt.most)
		require.Equal(t, tt.want, got, "%q", tt.in)
		require.Equal(t, tt.ok, ok, "%q", tt.in)
	}
}

// TestSplitListLinear: a list as long as an unauthenticated request can
// send is split in linear time. The repeats were dropped by a quadratic
// scan, and 100,000 distinct SSE channels cost 14.5 s of CPU (issue 12);
// the bound is a hundred times what a linear split needs under -race.
func TestSplitListLinear(t *testing.T) {
	t.Parallel()
	var sb strings.Builder
	const n = 100_000
	for i := range n {
		fmt.Fprintf(&sb, "c%05d,", i)
	}
	done := make(chan []string, 1)
	go func() { done <- wire.SplitList(sb.String()) }() // ends with the split
	select {
	case list := <-done:
		require.Len(t, list, n)
	case <-time.After(5 * time.Second):
		t.Fatal("splitting 100,000 distinct items took more than 5 s")
	}
}
