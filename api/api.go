package api

import (
	"cmp"
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"

	"github.com/hubdev/hub/hub"
)

// Config is what the HTTP surface needs from the rest of the hub.
type Config struct {
	// Ready reports whether this node can serve: nil when the database
	// answers and its schema is current. Its error text is shown to the
	// caller of /readyz, so it must hold no secrets. Required.
	Ready func(ctx context.Context) error
	// ReadyTimeout bounds one readiness check (default 1s), so /readyz
	// answers within 2 s even when the database hangs (SPEC §2.3).
	ReadyTimeout time.Duration
	// AdminToken is the bearer token of the admin API (HUB_ADMIN_TOKEN).
	AdminToken string
	// Admin is what the admin API reads and changes; without it the admin
	// routes are not served.
	Admin AdminStore
	// Stats gives this node's figures for GET /admin/stats; nil answers 503.
	Stats  StatsSource
	Logger *slog.Logger

	// Hub routes events to the WebSocket connections; without it the
	// WebSocket routes are not served.
	Hub   *hub.Hub
	Store Store
	// Leases holds the connections' slots; the node's *hub.Node.
	Leases Leases
	// AuthTimeout is the time a protocol A connection has to subscribe
	// (HUB_AUTH_TIMEOUT, default 30s).
	AuthTimeout time.Duration
	// EOSParkHeartbeat is protocol B's heartbeat (HUB_EOSPARK_HEARTBEAT,
	// default 10s).
	EOSParkHeartbeat time.Duration
	// HeartbeatInterval is protocol A's heartbeat (HUB_HEARTBEAT_INTERVAL,
	// default 60s).
	HeartbeatInterval time.Duration
	// MaxMessageBytes bounds an inbound frame; past it the connection is
	// closed with 1009 (HUB_MAX_MESSAGE_BYTES, default 64 KiB).
	MaxMessageBytes int
	// WriteTimeout drops a connection whose socket write blocks this long
	// (HUB_WRITE_TIMEOUT, default 10s).
	WriteTimeout time.Duration
	// Conns, when set, counts the live WebSocket connections and SSE streams.
	Conns *Conns
	// MaxPending caps the connections of every transport that have not
	// authenticated yet, on this node (HUB_MAX_PENDING, default 1024);
	// MaxPendingPerAddr caps them per remote IP address, an IPv6
	// address's /64 (HUB_MAX_PENDING_PER_ADDR, default 64). See pending.
	MaxPending        int
	MaxPendingPerAddr int

	pending *pending // shared by the transports of one New
}

func (c Config) withDefaults() Config {
	if c.ReadyTimeout <= 0 {
		c.ReadyTimeout = time.Second
	}
	c.AuthTimeout = cmp.Or(c.AuthTimeout, 30*time.Second)
	c.HeartbeatInterval = cmp.Or(c.HeartbeatInterval, time.Minute)
	c.MaxMessageBytes = cmp.Or(c.MaxMessageBytes, 64<<10)
	c.WriteTimeout = cmp.Or(c.WriteTimeout, 10*time.Second)
	c.MaxPending = cmp.Or(c.MaxPending, 1024)
	c.MaxPendingPerAddr = cmp.Or(c.MaxPendingPerAddr, 64)
	if c.pending == nil {
		c.pending = newPending(c.MaxPending, c.MaxPendingPerAddr)
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// New returns the hub's HTTP handler.
func New(cfg Config) *echo.Echo {
	cfg = cfg.withDefaults()
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = errorHandler(cfg.Logger)
	e.Use(middleware.RecoverWithConfig(middleware.RecoverConfig{
		LogErrorFunc: func(c echo.Context, err error, stack []byte) error {
			cfg.Logger.Error("handler panic", "method", c.Request().Method, "path", c.Path(), "err", err, "stack", string(stack))
			return err
		},
	}))
	e.Use(limitQuery)
	h := &handler{cfg: cfg}
	if cfg.Hub != nil {
		h.wsA = newWSA(cfg)
		h.wsB = newWSB(cfg, cfg.EOSParkHeartbeat)
		h.sse = newSSE(cfg)
	}
	routes(e, h)
	return e
}

// routes is every route of the hub.
func routes(e *echo.Echo, h *handler) {
	e.GET("/healthz", h.healthz)
	e.GET("/readyz", h.readyz)
	if h.cfg.Hub != nil {
		e.GET("/metrics", echo.WrapHandler(metricsHandler(h.cfg.Hub, h.wsWrites)))
	}
	if h.wsA != nil {
		e.GET("/ws/subscribe", h.wsA.serve)
	}
	if h.wsB != nil {
		e.GET("/v1/ws", h.wsB.serve)
	}
	if h.sse != nil {
		e.GET(sseSubscribePath, h.sse.handle)
		e.POST(sseSubscribePath, h.sse.handle)
	}
	if h.cfg.Admin != nil {
		adminRoutes(e.Group("/admin"), newAdmin(adminOptions{
			Store: h.cfg.Admin, Token: h.cfg.AdminToken, Stats: h.cfg.Stats, Logger: h.cfg.Logger,
		}))
	}
	dashboardRoutes(e) // GET / (the page) and GET /dashboard/* (its files)
}

// maxQueryBytes bounds a request's query string on every route: no valid
// request needs more (the longest is an SSE list of some 250 channel
// names of the most 64 characters), and nothing parses a longer one.
const maxQueryBytes = 16 << 10

const sseSubscribePath = "/sse/subscribe"

// limitQuery answers 414 to a query string over maxQueryBytes before any
// handler reads it. The SSE route refuses it itself, with an error event:
// its answer is always 200 (SPEC §7).
func limitQuery(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if len(c.Request().URL.RawQuery) > maxQueryBytes && c.Path() != sseSubscribePath {
			return echo.NewHTTPError(http.StatusRequestURITooLong, msgQueryTooLong)
		}
		return next(c)
	}
}

type handler struct {
	cfg Config
	wsA *wsA // nil without a hub
	wsB *wsB // nil without a hub
	sse *sse // nil without a hub
}

// wsWrites reads the WebSocket writers' socket writes for /metrics.
func (h *handler) wsWrites() map[string]uint64 {
	return map[string]uint64{
		hub.ProtocolA.String(): h.wsA.writes.Load(),
		hub.ProtocolB.String(): h.wsB.writes.Load(),
	}
}

// healthz answers while the process is up.
func (h *handler) healthz(c echo.Context) error {
	return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
}

// readyz answers 200 while the node can serve and 503 otherwise, so a load
// balancer sends no new connections to a node without its database.
func (h *handler) readyz(c echo.Context) error {
	ctx, cancel := context.WithTimeout(c.Request().Context(), h.cfg.ReadyTimeout)
	defer cancel()
	if err := h.cfg.Ready(ctx); err != nil {
		return c.JSON(http.StatusServiceUnavailable, map[string]string{"status": "unavailable", "error": err.Error()})
	}
	return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
}
