package api

import (
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/hubdev/hub/store"
)

// StatsSource gives this node's figures for GET /admin/stats; server
// implements it from the hub's counters.
type StatsSource interface {
	AdminStats() AdminStats
}

// AdminStats are one node's figures (SPEC §8).
type AdminStats struct {
	Node        string
	Connections ConnectionCounts // this node's live connections
	// EventsPerSecond and DeliveriesPerSecond are rates over a recent
	// window (a few seconds) of the events read from the log and the
	// frames delivered to connections of every protocol.
	EventsPerSecond     float64
	DeliveriesPerSecond float64
	// ReaderLag is hub_reader_lag_seconds: at the latest read, how old its
	// newest event was; 0 when idle.
	ReaderLag time.Duration
	Position  store.Position // the newest position read
}

// ConnectionCounts are live connections per protocol.
type ConnectionCounts struct {
	WS      int `json:"ws"`
	EOSPark int `json:"eospark"`
	SSE     int `json:"sse"`
}

// statsView is the stats shape of SPEC §8.
type statsView struct {
	Node                string           `json:"node"`
	Connections         ConnectionCounts `json:"connections"`
	EventsPerSecond     float64          `json:"eventsPerSecond"`
	DeliveriesPerSecond float64          `json:"deliveriesPerSecond"`
	ReaderLagSeconds    float64          `json:"readerLagSeconds"`
	Position            string           `json:"position"`
}

// statsGet answers GET /admin/stats with the figures of the node that
// serves the request.
func (h *adminHandler) statsGet(c echo.Context) error {
	if h.stats == nil {
		return echo.NewHTTPError(http.StatusServiceUnavailable, "stats are not available on this node")
	}
	st := h.stats.AdminStats()
	return c.JSON(http.StatusOK, statsView{
		Node: st.Node, Connections: st.Connections,
		EventsPerSecond: st.EventsPerSecond, DeliveriesPerSecond: st.DeliveriesPerSecond,
		ReaderLagSeconds: st.ReaderLag.Seconds(), Position: st.Position.String(),
	})
}
