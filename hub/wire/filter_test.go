package wire_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/hubdev/hub/hub/wire"
)

func TestParseFilter(t *testing.T) {
	many := make([]string, wire.MaxFilterValues+1)
	for i := range many {
		many[i] = `"v"`
	}
	tests := []struct {
		name, raw string
		ok        bool
	}{
		{"none", ``, true},
		{"null", `null`, true},
		{"one", `{"orders":{"accountId":["a1","a2"]}}`, true},
		{"scalars", `{"orders":{"orderId":[1,2.5,-3e2],"live":[true,false],"s":["x"]}}`, true},
		{"not an object", `[1]`, false},
		{"empty", `{}`, false},
		{"channel without keys", `{"orders":{}}`, false},
		{"key without values", `{"orders":{"accountId":[]}}`, false},
		{"values not a list", `{"orders":{"accountId":"a1"}}`, false},
		{"null value", `{"orders":{"accountId":[null]}}`, false},
		{"object value", `{"orders":{"accountId":[{"a":1}]}}`, false},
		{"huge exponent", `{"orders":{"orderId":[1e999999999]}}`, false},
		{"nine keys", `{"orders":{"a":[1],"b":[1],"c":[1],"d":[1]},"bets":{"e":[1],"f":[1],"g":[1],"h":[1],"i":[1]}}`, false},
		{"too many values", `{"orders":{"a":[` + strings.Join(many, ",") + `]}}`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := wire.ParseFilter(json.RawMessage(tt.raw))
			if tt.ok {
				require.NoError(t, err)
			} else {
				require.ErrorIs(t, err, wire.ErrInvalidFilter)
			}
		})
	}
}

func TestFilterMatch(t *testing.T) {
	f, err := wire.ParseFilter(json.RawMessage(`{"orders":{"accountId":["a1","a2"],"orderCents":[250]}}`))
	require.NoError(t, err)
	orders := f["orders"]
	tests := []struct {
		payload string
		want    bool
	}{
		{`{"accountId":"a1","orderCents":250}`, true},
		{`{"accountId": "a2", "orderCents": 250.00, "other": [1]}`, true},
		{`{"accountId":"a3","orderCents":250}`, false},
		{`{"accountId":"a1","orderCents":251}`, false},
		{`{"accountId":"a1"}`, false},
		{`{"accountId":"a1","orderCents":"250"}`, false},
		{`not json`, false},
	}
	for _, tt := range tests {
		require.Equal(t, tt.want, orders.Match([]byte(tt.payload)), tt.payload)
	}
	g, err := wire.ParseFilter(json.RawMessage(`{"orders":{"orderCents":[250.0],"accountId":["a2","a1"]}}`))
	require.NoError(t, err)
	require.Equal(t, orders.Key, g["orders"].Key, "equal filters, written otherwise, share a key")
}

// FuzzParseFilter: parsing never panics; a parsed filter's key is stable,
// and matching any payload never panics.
func FuzzParseFilter(f *testing.F) {
	f.Add(`{"orders":{"accountId":["a1",2,true]}}`, `{"accountId":"a1"}`)
	f.Add(`{"orders":{"n":[1e5]}}`, `{"n":100000}`)
	f.Add(`{"x":{"y":[-0.0]}}`, `{"y":0}`)
	f.Fuzz(func(t *testing.T, raw, payload string) {
		flt, err := wire.ParseFilter(json.RawMessage(raw))
		if err != nil {
			return
		}
		again, err := wire.ParseFilter(json.RawMessage(raw))
		require.NoError(t, err)
		for ch, cf := range flt {
			require.Equal(t, cf.Key, again[ch].Key)
			cf.Match([]byte(payload))
		}
	})
}
