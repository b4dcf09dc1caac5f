package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"reflect"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/hubdev/hub/store"
)

// AdminStore is the part of the store the admin routes use.
type AdminStore interface {
	ClientCreate(ctx context.Context, name string) (store.Client, error)
	ClientGet(ctx context.Context, name string) (store.Client, error)
	ClientList(ctx context.Context) ([]store.Client, error)
	ClientSetActive(ctx context.Context, name string, active bool) (store.Client, error)
	APIKeyCreate(ctx context.Context, p store.APIKeyCreateParams) (store.APIKey, string, error)
	APIKeyList(ctx context.Context, client string) ([]store.APIKey, error)
	APIKeyRevoke(ctx context.Context, id int64) (store.APIKey, error)
	LeaseCountByClient(ctx context.Context) (map[string]int, error)
	LeaseCountByKey(ctx context.Context, client string) (map[int64]int, error)
	LeaseList(ctx context.Context) ([]store.Lease, error)
	LeaseKick(ctx context.Context, id string) error
	EmergencySet(ctx context.Context, p store.EmergencySetParams) (store.Emergency, error)
	EventList(ctx context.Context, p store.EventListParams) ([]store.Event, error)
}

// Limits of the admin API's input.
const (
	defaultMaxConnections = 5
	maxMaxConnections     = 10000
	maxLabelLength        = 256      // characters
	maxAdminBody          = 64 << 10 // bytes
	maxReasonLength       = 1000     // characters of an emergency's reason
	defaultEventsLimit    = 100
	maxEventsLimit        = 1000
)

// adminHandler serves the admin routes (SPEC §8). Deactivating a client,
// revoking a key or kicking a connection only changes the database: each
// node's lease loop closes the connections concerned.
type adminHandler struct {
	store AdminStore
	token string
	stats StatsSource // nil: GET /admin/stats answers 503
	log   *slog.Logger
}

// adminOptions is what the admin handler needs.
type adminOptions struct {
	Store AdminStore
	// Token is HUB_ADMIN_TOKEN; an empty one refuses every request.
	Token string
	// Stats gives this node's figures for GET /admin/stats.
	Stats  StatsSource
	Logger *slog.Logger // nil discards
}

// newAdmin returns the admin handler.
func newAdmin(o adminOptions) *adminHandler {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &adminHandler{store: o.Store, token: o.Token, stats: o.Stats, log: o.Logger}
}

// adminRoutes registers the admin routes on g, the "/admin" group, behind
// the admin token; openapi.json describes each of them. The token check is
// group middleware, so it also guards the routes added to g afterwards,
// and unknown paths under g answer 401 before 404.
func adminRoutes(g *echo.Group, h *adminHandler) {
	g.Use(requireToken(h.token))
	g.POST("/clients", h.clientCreate)
	g.GET("/clients", h.clientList)
	g.PATCH("/clients/:client", h.clientPatch)
	g.POST("/clients/:client/keys", h.keyCreate)
	g.GET("/clients/:client/keys", h.keyList)
	g.DELETE("/keys/:id", h.keyRevoke)
	g.GET("/connections", h.connectionList)
	g.DELETE("/connections/:id", h.connectionKick)
	g.POST("/emergency", h.emergencySet)
	g.GET("/events", h.eventList)
	g.GET("/stats", h.statsGet)
	g.GET("/openapi.json", openAPIDocument)
}

// bindJSON decodes the request body, which must be a single JSON object
// without unknown fields, into dst. Malformed JSON is 400; a value of the
// wrong type is well-formed but invalid, 422 (SPEC §8).
func bindJSON(c echo.Context, dst any) error {
	body, err := io.ReadAll(http.MaxBytesReader(c.Response(), c.Request().Body, maxAdminBody))
	if errors.As(err, new(*http.MaxBytesError)) {
		return echo.NewHTTPError(http.StatusRequestEntityTooLarge, fmt.Sprintf("request body larger than %d bytes", maxAdminBody))
	}
	if err != nil {
		return echo.NewHTTPError(http.StatusBadRequest, "reading request body failed")
	}
	if trimmed := bytes.TrimLeft(body, " \t\r\n"); len(trimmed) == 0 || trimmed[0] != '{' {
		return echo.NewHTTPError(http.StatusBadRequest, "request body must be a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return decodeError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return echo.NewHTTPError(http.StatusBadRequest, "request body must be a single JSON object")
	}
	return nil
}

func decodeError(err error) error {
	var typeErr *json.UnmarshalTypeError
	if errors.As(err, &typeErr) && typeErr.Field != "" {
		return invalid(fmt.Sprintf("%s: must be %s", typeErr.Field, jsonKind(typeErr.Type)))
	}
	return echo.NewHTTPError(http.StatusBadRequest, "malformed JSON: "+strings.TrimPrefix(err.Error(), "json: "))
}

// jsonKind names what a request field of type t holds.
func jsonKind(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int64:
		return "an integer"
	case reflect.String:
		return "a string"
	default:
		return "a " + t.String()
	}
}

func invalid(msg string) error {
	return echo.NewHTTPError(http.StatusUnprocessableEntity, msg)
}

func notFound(what string) error {
	return echo.NewHTTPError(http.StatusNotFound, what+" not found")
}

// storeError maps the store's sentinels to HTTP errors about what; other
// errors are internal and reach the error handler as they are.
func storeError(err error, what string) error {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return notFound(what)
	case errors.Is(err, store.ErrExists):
		return echo.NewHTTPError(http.StatusConflict, what+" already exists")
	}
	return err
}

var _ AdminStore = (*store.Store)(nil)
