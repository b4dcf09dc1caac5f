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
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/hubdev/hub/store"
)

// AdminStore is the part of the store the admin routes for clients and
// keys use.
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
}

// Limits of the admin API's input.
const (
	defaultMaxConnections = 5
	maxMaxConnections     = 10000
	maxLabelLength        = 256      // characters
	maxAdminBody          = 64 << 10 // bytes
)

// adminHandler serves the admin routes for clients and API keys (SPEC §8).
// Deactivating a client or revoking a key only changes the database: each
// node's lease loop closes the connections concerned.
type adminHandler struct {
	store AdminStore
	token string
	log   *slog.Logger
}

// newAdminHandler returns the admin handler; token is HUB_ADMIN_TOKEN, and
// an empty one refuses every request. A nil log discards.
func newAdminHandler(store AdminStore, token string, log *slog.Logger) *adminHandler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &adminHandler{store: store, token: token, log: log}
}

// adminRoutes registers the client and key routes on g, the "/admin"
// group, behind the admin token. The token check is group middleware, so
// it also guards the routes added to g afterwards, and unknown paths under
// g answer 401 before 404.
func adminRoutes(g *echo.Group, h *adminHandler) {
	g.Use(requireToken(h.token))
	g.POST("/clients", h.clientCreate)
	g.GET("/clients", h.clientList)
	g.PATCH("/clients/:client", h.clientPatch)
	g.POST("/clients/:client/keys", h.keyCreate)
	g.GET("/clients/:client/keys", h.keyList)
	g.DELETE("/keys/:id", h.keyRevoke)
}

// clientView is the client shape of SPEC §8.
type clientView struct {
	Client      string    `json:"client"`
	Active      bool      `json:"active"`
	CreatedAt   time.Time `json:"createdAt"`
	Connections int       `json:"connections"`
}

func newClientView(c store.Client, connections int) clientView {
	return clientView{Client: c.Client, Active: c.Active, CreatedAt: c.CreatedAt.UTC(), Connections: connections}
}

// keyView is the key shape of SPEC §8; it has no field for the key itself.
type keyView struct {
	ID             int64      `json:"id"`
	Client         string     `json:"client"`
	Label          string     `json:"label"`
	MaxConnections int        `json:"maxConnections"`
	CreatedAt      time.Time  `json:"createdAt"`
	RevokedAt      *time.Time `json:"revokedAt"`
	Connections    int        `json:"connections"`
}

// createdKeyView is the 201 reply of a key's creation, the only one that
// shows the key.
type createdKeyView struct {
	keyView
	APIKey string `json:"apiKey"`
}

func newKeyView(k store.APIKey, connections int) keyView {
	v := keyView{
		ID: k.ID, Client: k.Client, Label: k.Label, MaxConnections: k.MaxConnections,
		CreatedAt: k.CreatedAt.UTC(), Connections: connections,
	}
	if k.RevokedAt != nil {
		t := k.RevokedAt.UTC()
		v.RevokedAt = &t
	}
	return v
}

type clientCreateRequest struct {
	Client string `json:"client"`
}

// clientCreate answers POST /admin/clients.
func (h *adminHandler) clientCreate(c echo.Context) error {
	var req clientCreateRequest
	if err := bindJSON(c, &req); err != nil {
		return err
	}
	if !validClientName(req.Client) {
		return invalid("client: must be 1 to 64 characters of a-z, 0-9, _ and -")
	}
	cl, err := h.store.ClientCreate(c.Request().Context(), req.Client)
	if err != nil {
		return storeError(err, fmt.Sprintf("client %q", req.Client))
	}
	h.log.Info("admin: client created", "client", cl.Client)
	return c.JSON(http.StatusCreated, newClientView(cl, 0))
}

// clientList answers GET /admin/clients.
func (h *adminHandler) clientList(c echo.Context) error {
	ctx := c.Request().Context()
	list, err := h.store.ClientList(ctx)
	if err != nil {
		return err
	}
	counts, err := h.store.LeaseCountByClient(ctx)
	if err != nil {
		return err
	}
	views := make([]clientView, len(list))
	for i, cl := range list {
		views[i] = newClientView(cl, counts[cl.Client])
	}
	return c.JSON(http.StatusOK, map[string][]clientView{"clients": views})
}

type clientPatchRequest struct {
	Active *bool `json:"active"`
}

// clientPatch answers PATCH /admin/clients/:client.
func (h *adminHandler) clientPatch(c echo.Context) error {
	name := c.Param("client")
	var req clientPatchRequest
	if err := bindJSON(c, &req); err != nil {
		return err
	}
	if req.Active == nil {
		return invalid("active: required, true or false")
	}
	if !validClientName(name) {
		return notFound(fmt.Sprintf("client %q", name))
	}
	ctx := c.Request().Context()
	cl, err := h.store.ClientSetActive(ctx, name, *req.Active)
	if err != nil {
		return storeError(err, fmt.Sprintf("client %q", name))
	}
	counts, err := h.store.LeaseCountByClient(ctx)
	if err != nil {
		return err
	}
	h.log.Info("admin: client updated", "client", cl.Client, "active", cl.Active)
	return c.JSON(http.StatusOK, newClientView(cl, counts[cl.Client]))
}

type keyCreateRequest struct {
	Label          string `json:"label"`
	MaxConnections *int   `json:"maxConnections"`
}

// validate checks the request and fills in the defaults.
func (r *keyCreateRequest) validate() error {
	if r.MaxConnections == nil {
		n := defaultMaxConnections
		r.MaxConnections = &n
	}
	if n := *r.MaxConnections; n < 1 || n > maxMaxConnections {
		return invalid(fmt.Sprintf("maxConnections: must be between 1 and %d", maxMaxConnections))
	}
	if utf8.RuneCountInString(r.Label) > maxLabelLength {
		return invalid(fmt.Sprintf("label: must be at most %d characters", maxLabelLength))
	}
	return nil
}

// keyCreate answers POST /admin/clients/:client/keys.
func (h *adminHandler) keyCreate(c echo.Context) error {
	name := c.Param("client")
	var req keyCreateRequest
	if err := bindJSON(c, &req); err != nil {
		return err
	}
	if err := req.validate(); err != nil {
		return err
	}
	if !validClientName(name) {
		return notFound(fmt.Sprintf("client %q", name))
	}
	k, key, err := h.store.APIKeyCreate(c.Request().Context(), store.APIKeyCreateParams{
		Client: name, Label: req.Label, MaxConnections: *req.MaxConnections,
	})
	if err != nil {
		return storeError(err, fmt.Sprintf("client %q", name))
	}
	h.log.Info("admin: api key created", "client", k.Client, "key_id", k.ID)
	return c.JSON(http.StatusCreated, createdKeyView{keyView: newKeyView(k, 0), APIKey: key})
}

// keyList answers GET /admin/clients/:client/keys.
func (h *adminHandler) keyList(c echo.Context) error {
	name := c.Param("client")
	if !validClientName(name) {
		return notFound(fmt.Sprintf("client %q", name))
	}
	ctx := c.Request().Context()
	// Clients are never deleted, so one that exists now still does when
	// its keys are read.
	if _, err := h.store.ClientGet(ctx, name); err != nil {
		return storeError(err, fmt.Sprintf("client %q", name))
	}
	keys, err := h.store.APIKeyList(ctx, name)
	if err != nil {
		return err
	}
	counts, err := h.store.LeaseCountByKey(ctx, name)
	if err != nil {
		return err
	}
	views := make([]keyView, len(keys))
	for i, k := range keys {
		views[i] = newKeyView(k, counts[k.ID])
	}
	return c.JSON(http.StatusOK, map[string][]keyView{"keys": views})
}

// keyRevoke answers DELETE /admin/keys/:id; revoking a revoked key is a
// success too (SPEC §8).
func (h *adminHandler) keyRevoke(c echo.Context) error {
	id, err := strconv.ParseInt(c.Param("id"), 10, 64)
	if err != nil {
		return echo.NewHTTPError(http.StatusBadRequest, "id: must be an integer")
	}
	k, err := h.store.APIKeyRevoke(c.Request().Context(), id)
	if err != nil {
		return storeError(err, fmt.Sprintf("api key %d", id))
	}
	h.log.Info("admin: api key revoked", "client", k.Client, "key_id", k.ID)
	return c.NoContent(http.StatusNoContent)
}

// validClientName reports whether name is 1–64 characters of a-z, 0-9, _
// and - (SPEC §8).
func validClientName(name string) bool {
	if len(name) < 1 || len(name) > 64 {
		return false
	}
	for _, r := range []byte(name) {
		if (r < 'a' || r > 'z') && (r < '0' || r > '9') && r != '_' && r != '-' {
			return false
		}
	}
	return true
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
