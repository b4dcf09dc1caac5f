package api

import (
	"fmt"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/hubdev/hub/store"
)

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
