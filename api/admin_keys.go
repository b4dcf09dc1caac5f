package api

import (
	"fmt"
	"net/http"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/hubdev/hub/store"
)

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
