package api

// Tests of issue 12: nothing an unauthenticated request sends costs more
// than linear work, and no peer holds much for long before it
// authenticates.

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/hubdev/hub/hub/wire"
	"github.com/hubdev/hub/store"
	"github.com/hubdev/hub/store/storetest"
)

// longChannelList is the request of issue 12: channels c00000 to c99999,
// 700 KB of query, which took 14.5 s of CPU before it was refused.
func longChannelList() string {
	var sb strings.Builder
	for i := range 100_000 {
		fmt.Fprintf(&sb, "c%05d,", i)
	}
	return sb.String()
}

func TestSSEQueryTooLong(t *testing.T) {
	t.Parallel()
	b := setupSSE(t, 0)
	list := longChannelList()
	justOver := url.Values{"channels": {strings.Repeat("c", maxQueryBytes)}}
	for _, tt := range []struct {
		name   string
		method string
		query  url.Values
		header http.Header
	}{
		{"the issue's request, no key", http.MethodGet, channelsQuery(list), nil},
		{"with a good key", http.MethodGet, channelsQuery(list), keyHeader(b.key)},
		{"just over", http.MethodGet, justOver, keyHeader(b.key)},
		{"post", http.MethodPost, justOver, keyHeader(b.key)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b.open(t, tt.method, tt.query, tt.header, "").requireError(t, msgQueryTooLong, wire.CloseTooBig)
		})
	}
	// At the bound, the query is read: here its channel is unknown.
	atBound := url.Values{"channels": {strings.Repeat("c", maxQueryBytes-len("channels="))}}
	b.get(t, atBound, keyHeader(b.key)).requireError(t, wire.UnknownChannel(atBound["channels"][0]), wire.ClosePolicy)
}

// TestQueryTooLong: every other route answers 414 before reading a query
// over maxQueryBytes; the admin API before the token check, which costs
// more than the length check.
func TestQueryTooLong(t *testing.T) {
	t.Parallel()
	pool, _ := storetest.NewPool(t)
	e := New(Config{
		Ready: func(context.Context) error { return nil }, AdminToken: adminTestToken, Admin: store.New(pool),
		Logger: slog.New(slog.DiscardHandler),
	})
	long := "?channel=" + strings.Repeat("x", maxQueryBytes)
	for _, tt := range []struct{ path, auth string }{
		{"/admin/events" + long, ""},
		{"/admin/events" + long, "Bearer " + adminTestToken},
		{"/healthz" + long, ""},
	} {
		rec := serveAdmin(e, http.MethodGet, tt.path, "", tt.auth)
		requireErrorBody(t, rec, http.StatusRequestURITooLong, msgQueryTooLong)
	}
	rec := serveAdmin(e, http.MethodGet, "/admin/events?limit=1&channel="+strings.Repeat("x", 100), "", "Bearer "+adminTestToken)
	require.Equal(t, http.StatusUnprocessableEntity, rec.Code, "a query under the bound is read")
}

// TestSSEChannelsOnce: the connected event names each channel once,
// however often the request repeats it.
func TestSSEChannelsOnce(t *testing.T) {
	t.Parallel()
	b := setupSSE(t, 0)
	body := `{"apiKey":"` + b.key + `","channels":["orders","bets","orders","orders"]}`
	b.post(t, nil, body).requireConnected(t, []string{"orders", "bets"})
	b.get(t, channelsQuery("scores,orders,scores"), keyHeader(b.key)).requireConnected(t, []string{"scores", "orders"})
}
