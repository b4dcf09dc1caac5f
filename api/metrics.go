package api

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/hubdev/hub/hub"
)

// MetricsSource is what /metrics reads on each scrape; *hub.Hub.
type MetricsSource interface {
	Stats() hub.Stats
}

// MetricsHandler serves the hub's metrics (SPEC §8) and the Go runtime's
// and process's in the Prometheus text format, from a registry of its
// own: the hub's values are read once per scrape, never pushed.
func MetricsHandler(src MetricsSource) http.Handler { return metricsHandler(src, nil) }

// wsWrites reads the socket writes of the WebSocket writers per protocol
// (hub.Protocol's names).
type wsWrites func() map[string]uint64

func metricsHandler(src MetricsSource, writes wsWrites) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		newHubCollector(src, writes),
	)
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
}

// hubCollector turns one hub.Stats snapshot into the hub_* series.
type hubCollector struct {
	src         MetricsSource
	writes      wsWrites // nil: no hub_websocket_writes_total
	connections *prometheus.Desc
	catchingUp  *prometheus.Desc
	events      *prometheus.Desc
	batches     *prometheus.Desc
	deliveries  *prometheus.Desc
	slowCloses  *prometheus.Desc
	readerLag   *prometheus.Desc
	oldestWrite *prometheus.Desc
	delivery    *prometheus.Desc
	wsWrites    *prometheus.Desc
}

func newHubCollector(src MetricsSource, writes wsWrites) *hubCollector {
	protocol := []string{"protocol"}
	return &hubCollector{
		src: src, writes: writes,
		connections: prometheus.NewDesc("hub_connections",
			"Open sessions on this node, per protocol.", protocol, nil),
		catchingUp: prometheus.NewDesc("hub_catchup_sessions",
			"Sessions reading from the log (resuming or behind) rather than live.", nil, nil),
		events: prometheus.NewDesc("hub_events_read_total",
			"Events read from the log by this node.", nil, nil),
		batches: prometheus.NewDesc("hub_reader_batches_total",
			"Non-empty reads of the log by this node.", nil, nil),
		deliveries: prometheus.NewDesc("hub_deliveries_total",
			"Event frames handed to connections, per protocol.", protocol, nil),
		slowCloses: prometheus.NewDesc("hub_slow_consumer_closes_total",
			"Connections closed as slow consumers.", nil, nil),
		readerLag: prometheus.NewDesc("hub_reader_lag_seconds",
			"Age of the newest event of the latest read when it was handed over; 0 when that read found nothing.", nil, nil),
		oldestWrite: prometheus.NewDesc("hub_oldest_open_transaction_seconds",
			"Age of the oldest open write transaction in the cluster, which holds delivery back.", nil, nil),
		delivery: prometheus.NewDesc("hub_delivery_seconds",
			"Time from reading an event (or from the subscribe, for a replay) to writing its frame to the socket.", nil, nil),
		wsWrites: prometheus.NewDesc("hub_websocket_writes_total",
			"Socket writes of WebSocket connections, per protocol; each carries every frame that was waiting (hub_deliveries_total over this is the frames per write).", protocol, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *hubCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		c.connections, c.catchingUp, c.events, c.batches, c.deliveries,
		c.slowCloses, c.readerLag, c.oldestWrite, c.delivery, c.wsWrites,
	} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *hubCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.src.Stats()
	for p := range st.Connections {
		name := hub.Protocol(p).String()
		ch <- prometheus.MustNewConstMetric(c.connections, prometheus.GaugeValue, float64(st.Connections[p]), name)
		ch <- prometheus.MustNewConstMetric(c.deliveries, prometheus.CounterValue, float64(st.Deliveries[p]), name)
	}
	ch <- prometheus.MustNewConstMetric(c.catchingUp, prometheus.GaugeValue, float64(st.CatchingUp))
	ch <- prometheus.MustNewConstMetric(c.events, prometheus.CounterValue, float64(st.Events))
	ch <- prometheus.MustNewConstMetric(c.batches, prometheus.CounterValue, float64(st.Batches))
	ch <- prometheus.MustNewConstMetric(c.slowCloses, prometheus.CounterValue, float64(st.SlowCloses))
	ch <- prometheus.MustNewConstMetric(c.readerLag, prometheus.GaugeValue, st.ReaderLag.Seconds())
	ch <- prometheus.MustNewConstMetric(c.oldestWrite, prometheus.GaugeValue, st.OldestWrite.Seconds())
	h := st.Delivery
	buckets := make(map[float64]uint64, len(h.Bounds))
	for i, b := range h.Bounds {
		buckets[b.Seconds()] = h.Cumulative[i]
	}
	ch <- prometheus.MustNewConstHistogram(c.delivery, h.Count, h.Sum.Seconds(), buckets)
	if c.writes != nil {
		for name, n := range c.writes() {
			ch <- prometheus.MustNewConstMetric(c.wsWrites, prometheus.CounterValue, float64(n), name)
		}
	}
}
