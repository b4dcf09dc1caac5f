package store

import (
	"encoding/json"
	"maps"
	"testing"

	"github.com/stretchr/testify/require"
)

// orders is what columnsSQL gives for public.orders.
var orders = newColumnSet(ordersColumns)

var ordersColumns = map[string]column{
	"order_id": {key: "orderId"}, "client": {key: "client"}, "account_id": {key: "accountId"},
	"fixture_id": {key: "fixtureId"}, "outcome_id": {key: "outcomeId"}, "exchange": {key: "exchange"},
	"exchange_order_id": {key: "exchangeOrderId"}, "order_status": {key: "orderStatus"},
	"matched_status": {key: "matchedStatus"}, "order_cents": {key: "orderCents"},
	"order_stake": {key: "orderStake"}, "matched_stake": {key: "matchedStake"},
	"matched_at": {key: "matchedAt", kind: kindTZ}, "created_at": {key: "createdAt", kind: kindTZ},
}

// An orders row as the capture records it, in a writer's session with
// TimeZone Asia/Shanghai.
const ordersRaw = `{"client": "acme", "exchange": "polymarket", "order_id": 123, "account_id": "acc-1", "created_at": "2026-02-15T18:30:05.123+08:00", "fixture_id": "id1000000861624412", "matched_at": "2026-02-16T02:00:00+08:00", "outcome_id": 161, "order_cents": 0.45, "order_stake": 100.0, "order_status": "FILLED", "matched_stake": 100.0, "matched_status": "FULLY_MATCHED", "exchange_order_id": "0x1a2b3c"}`

// The same row as migration 7's capture stored it.
const ordersWire = `{"client": "acme", "orderId": 123, "exchange": "polymarket", "accountId": "acc-1", "createdAt": "2026-02-15T10:30:05.123Z", "fixtureId": "id1000000861624412", "matchedAt": "2026-02-15T18:00:00Z", "outcomeId": 161, "orderCents": 0.45, "orderStake": 100.0, "orderStatus": "FILLED", "matchedStake": 100.0, "matchedStatus": "FULLY_MATCHED", "exchangeOrderId": "0x1a2b3c"}`

func TestRowConverter(t *testing.T) {
	t.Parallel()
	cols := map[string]column{
		"id": {key: "id"}, "a_b": {key: "aB"}, "aB": {key: "aB"}, "_x_": {key: "x"},
		"period1_home": {key: "period1Home"}, "at": {key: "at", kind: kindTZ}, "ts": {key: "ts", kind: kindTS},
		"list": {key: "list", kind: kindTZNested}, "dom": {key: "dom", kind: kindTZNested},
		"doc": {key: "doc"}, `q"t`: {key: `q"t`}, "tab\t": {key: "tab\t"}, "é_é": {key: "éÉ"},
	}
	maps.Copy(cols, ordersColumns)
	set := newColumnSet(cols)
	tests := []struct{ name, raw, want string }{
		{"orders", ordersRaw, ordersWire},
		{"old", `{"matched_at": "2026-02-15T10:30:05-05:00", "matched_stake": 0}`, `{"matchedAt": "2026-02-15T15:30:05Z", "matchedStake": 0}`},
		{"empty", `{}`, `{}`},
		{"null timestamp", `{"matched_at": null}`, `{"matchedAt": null}`},
		{"camel", `{"_x_": 1, "period1_home": 2}`, `{"x": 1, "period1Home": 2}`},
		{"the last of equal keys wins", `{"aB": 1, "a_b": 2}`, `{"aB": 2}`},
		{"non-ASCII keys", `{"é_é": 1}`, `{"éÉ": 1}`},
		{"escaped keys", `{"q\"t": 1, "tab\t": 2}`, `{"q\"t": 1, "tab\t": 2}`},
		{"jsonb values untouched", `{"doc": {"snake_key": "2026-02-15T10:30:05+08:00", "b": [1, {"c": "}"}]}}`, `{"doc": {"snake_key": "2026-02-15T10:30:05+08:00", "b": [1, {"c": "}"}]}}`},
		{"infinity", `{"at": "infinity", "ts": "-infinity"}`, `{"at": "infinity", "ts": "-infinity"}`},
		{"timestamp", `{"ts": "2026-01-02T03:04:05.25"}`, `{"ts": "2026-01-02T03:04:05.25Z"}`},
		{"timestamp BC", `{"ts": "0044-03-15T12:00:00 BC"}`, `{"ts": "0044-03-15T12:00:00 BCZ"}`},
		{"across midnight", `{"at": "2026-01-01T00:30:00+01:00"}`, `{"at": "2025-12-31T23:30:00Z"}`},
		{"negative offset", `{"at": "2026-12-31T23:30:00.000001-02:30"}`, `{"at": "2027-01-01T02:00:00.000001Z"}`},
		{"local mean time", `{"at": "1900-01-01T00:00:00+00:19:32"}`, `{"at": "1899-12-31T23:40:28Z"}`},
		{"BC", `{"at": "0044-03-15T12:00:00+01:00 BC"}`, `{"at": "0044-03-15T11:00:00+00:00 BC"}`},
		{"into AD", `{"at": "0001-12-31T23:00:00-02:00 BC"}`, `{"at": "0001-01-01T01:00:00Z"}`},
		{"into BC", `{"at": "0001-01-01T00:30:00+01:00"}`, `{"at": "0001-12-31T23:30:00+00:00 BC"}`},
		{"five-digit year", `{"at": "10000-01-01T05:00:00+08:00"}`, `{"at": "9999-12-31T21:00:00Z"}`},
		{"largest", `{"at": "294276-12-31T23:59:59.999999+00:00"}`, `{"at": "294276-12-31T23:59:59.999999Z"}`},
		{"array", `{"list": ["2026-02-15T18:30:05+08:00", null, ["infinity", "2026-02-15T10:30:05-01:00"]]}`, `{"list": ["2026-02-15T10:30:05+00:00", null, ["infinity", "2026-02-15T11:30:05+00:00"]]}`},
		{"domain", `{"dom": "2026-02-15T18:30:05+08:00"}`, `{"dom": "2026-02-15T10:30:05+00:00"}`},
		{"other spacing", " {\"id\":1,\n\"at\" : \"2026-02-15T18:30:05+08:00\"} ", `{"at": "2026-02-15T10:30:05Z", "id": 1}`},
		{"not an object", `[1, 2]`, `[1, 2]`},
		{"not JSON", `{"id": `, `{"id": `},
	}
	var c rowConverter
	for _, tt := range tests {
		got, ok := c.convert([]byte(tt.raw), set)
		require.True(t, ok, tt.name)
		require.Equal(t, tt.want, string(got), tt.name)
	}
}

func TestRowConverterUnknownKey(t *testing.T) {
	t.Parallel()
	raw := `{"order_id": 1, "audited_at": "2026-02-15T18:30:05+08:00", "z_z": 2}`
	var c rowConverter
	got, ok := c.convert([]byte(raw), orders)
	require.False(t, ok)
	require.Equal(t, raw, string(got), "left as it was")
	require.Equal(t, []string{"audited_at", "z_z"}, unknownKeys([]byte(raw), orders))
}

// camel agrees with hub.camel: see TestCamel, which runs both.
func TestCamelInGo(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"exchange_order_id": "exchangeOrderId",
		"period1_home":      "period1Home",
		"_leading":          "leading",
		"trailing_":         "trailing",
		"__both__sides__":   "bothSides",
		"id":                "id",
		"_":                 "",
		"é_é":               "éÉ",
		"Mixed_case":        "MixedCase",
	} {
		require.Equal(t, want, camel(in), in)
	}
}

// Whatever a raw row holds, the converter neither panics nor turns a JSON
// object into something that is not JSON.
func FuzzRowConverter(f *testing.F) {
	f.Add([]byte(ordersRaw))
	f.Add([]byte(`{"list": ["2026-02-15T18:30:05+08:00", null], "ts": "0044-03-15T12:00:00 BC"}`))
	f.Add([]byte(`{"q\"t": "\\", "at": "infinity"}`))
	cols := map[string]column{
		"at": {key: "at", kind: kindTZ}, "ts": {key: "ts", kind: kindTS}, "list": {key: "list", kind: kindTZNested},
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		in := string(raw)
		known := maps.Clone(cols)
		for _, k := range unknownKeys(raw, newColumnSet(known)) {
			known[k] = column{key: camel(k)}
		}
		var c rowConverter
		got, ok := c.convert(raw, newColumnSet(known))
		require.True(t, ok, "every key is known")
		if json.Valid([]byte(in)) && !json.Valid(got) {
			t.Fatalf("%q became %q", in, got)
		}
	})
}

// BenchmarkRowConverter converts an orders UPDATE as the reader does: the
// payload (14 columns, two timestamps in a writer's offset) and its old
// (three columns), both read into fresh memory as pgx scans them.
func BenchmarkRowConverter(b *testing.B) {
	old := `{"matched_at": null, "matched_stake": 0, "order_status": "PLACED"}`
	var c rowConverter
	b.ReportAllocs()
	b.SetBytes(int64(len(ordersRaw) + len(old)))
	for b.Loop() {
		payload, raw := []byte(ordersRaw), []byte(old)
		if _, ok := c.convert(payload, orders); !ok {
			b.Fatal("unknown key")
		}
		if _, ok := c.convert(raw, orders); !ok {
			b.Fatal("unknown key")
		}
	}
}
