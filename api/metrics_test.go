package api_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"

	"github.com/hubdev/hub/api"
	"github.com/hubdev/hub/hub"
	"github.com/hubdev/hub/hub/hubtest"
	"github.com/hubdev/hub/hub/wire"
)

// countingConn is a transport that writes every frame at once and counts
// them.
type countingConn struct {
	sess   *hub.Session
	mu     sync.Mutex
	frames int
}

func (c *countingConn) Send(frames ...[]byte) {
	c.mu.Lock()
	c.frames += len(frames)
	c.mu.Unlock()
	go c.sess.Sent(len(frames)) // the writer acknowledges from its own goroutine
}

func (c *countingConn) Close(wire.Close) { go c.sess.Gone() }

func (c *countingConn) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.frames
}

// setupMetrics runs a hub on a fresh database, with the reader's hooks
// wired to the hub as the server wires them.
func setupMetrics(t *testing.T) (*hub.Hub, func(sql string)) {
	t.Helper()
	env := hubtest.Start(t, hubtest.Options{PollInterval: 50 * time.Millisecond})
	return env.Hub, func(sql string) { env.Exec(t, sql) }
}

func scrapeMetrics(t *testing.T, h http.Handler) map[string]*dto.MetricFamily {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(rec.Body)
	require.NoError(t, err)
	return families
}

// value is the value of the family's series with the given protocol
// label, or its only series for "".
func value(t *testing.T, families map[string]*dto.MetricFamily, name, protocol string) float64 {
	t.Helper()
	f := families[name]
	require.NotNil(t, f, "series %s missing", name)
	for _, m := range f.GetMetric() {
		var got string
		for _, l := range m.GetLabel() {
			if l.GetName() == "protocol" {
				got = l.GetValue()
			}
		}
		if got != protocol {
			continue
		}
		switch f.GetType() {
		case dto.MetricType_COUNTER:
			return m.GetCounter().GetValue()
		case dto.MetricType_GAUGE:
			return m.GetGauge().GetValue()
		case dto.MetricType_HISTOGRAM:
			return float64(m.GetHistogram().GetSampleCount())
		}
	}
	t.Fatalf("series %s{protocol=%q} missing", name, protocol)
	return 0
}

func TestMetricsSeries(t *testing.T) {
	t.Parallel()
	h, exec := setupMetrics(t)
	handler := api.MetricsHandler(h)

	before := scrapeMetrics(t, handler)
	for name, typ := range map[string]dto.MetricType{
		"hub_connections":                     dto.MetricType_GAUGE,
		"hub_catchup_sessions":                dto.MetricType_GAUGE,
		"hub_events_read_total":               dto.MetricType_COUNTER,
		"hub_reader_batches_total":            dto.MetricType_COUNTER,
		"hub_deliveries_total":                dto.MetricType_COUNTER,
		"hub_slow_consumer_closes_total":      dto.MetricType_COUNTER,
		"hub_reader_lag_seconds":              dto.MetricType_GAUGE,
		"hub_oldest_open_transaction_seconds": dto.MetricType_GAUGE,
		"hub_delivery_seconds":                dto.MetricType_HISTOGRAM,
		"go_goroutines":                       dto.MetricType_GAUGE,
		"process_cpu_seconds_total":           dto.MetricType_COUNTER,
	} {
		require.Contains(t, before, name)
		require.Equal(t, typ, before[name].GetType(), name)
	}
	for _, p := range []string{"ws", "eospark", "sse"} {
		require.Zero(t, value(t, before, "hub_connections", p))
		require.Zero(t, value(t, before, "hub_deliveries_total", p))
	}
	require.Zero(t, value(t, before, "hub_events_read_total", ""))
	require.Zero(t, value(t, before, "hub_delivery_seconds", ""))

	var conns []*countingConn
	for _, p := range []hub.Protocol{hub.ProtocolA, hub.ProtocolB, hub.ProtocolSSE} {
		c := &countingConn{}
		c.sess = h.Connect(hub.ConnectParams{Conn: c, Protocol: p, Credits: 8})
		t.Cleanup(c.sess.Gone)
		_, err := c.sess.Subscribe(context.Background(), hub.Subscription{Client: "acme", Channels: []string{"orders"}})
		require.NoError(t, err)
		conns = append(conns, c)
	}
	exec(`INSERT INTO orders (client, account_id) SELECT 'acme', g::text FROM generate_series(1, 5) g`)
	exec(`INSERT INTO orders (client, account_id) VALUES ('acme', 'last')`)
	for _, c := range conns {
		require.Eventually(t, func() bool { return c.count() == 6 }, frameWait, time.Millisecond)
	}

	var after map[string]*dto.MetricFamily
	require.Eventually(t, func() bool { // Sent runs after the frame is counted
		after = scrapeMetrics(t, handler)
		return value(t, after, "hub_delivery_seconds", "") == 18
	}, frameWait, 5*time.Millisecond)
	for _, p := range []string{"ws", "eospark", "sse"} {
		require.Equal(t, 1.0, value(t, after, "hub_connections", p), p)
		require.Equal(t, 6.0, value(t, after, "hub_deliveries_total", p), p)
	}
	require.Equal(t, 6.0, value(t, after, "hub_events_read_total", ""))
	require.GreaterOrEqual(t, value(t, after, "hub_reader_batches_total", ""), 1.0)
	require.GreaterOrEqual(t, value(t, after, "hub_reader_lag_seconds", ""), 0.0)
	require.GreaterOrEqual(t, value(t, after, "hub_oldest_open_transaction_seconds", ""), 0.0)
	hist := after["hub_delivery_seconds"].GetMetric()[0].GetHistogram()
	require.Positive(t, hist.GetSampleSum())
	buckets := hist.GetBucket()
	require.NotEmpty(t, buckets)
	require.Equal(t, uint64(18), buckets[len(buckets)-1].GetCumulativeCount(), "all within the last bound")

	require.Eventually(t, func() bool { // the next poll finds nothing
		return value(t, scrapeMetrics(t, handler), "hub_reader_lag_seconds", "") == 0
	}, frameWait, 5*time.Millisecond)

	conns[0].sess.Close(wire.Close{Code: 1000, Reason: "bye"})
	require.Zero(t, value(t, scrapeMetrics(t, handler), "hub_connections", "ws"))
}
