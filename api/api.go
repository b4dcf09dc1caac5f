package api

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
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
	Logger     *slog.Logger
}

func (c Config) withDefaults() Config {
	if c.ReadyTimeout <= 0 {
		c.ReadyTimeout = time.Second
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
	routes(e, &handler{cfg: cfg})
	return e
}

// routes is every route of the hub.
func routes(e *echo.Echo, h *handler) {
	e.GET("/healthz", h.healthz)
	e.GET("/readyz", h.readyz)
}

type handler struct {
	cfg Config
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
