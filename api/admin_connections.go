package api

import (
	"fmt"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/hubdev/hub/store"
)

// connectionView is the connection shape of SPEC §8.
type connectionView struct {
	ID          string    `json:"id"`
	Node        string    `json:"node"`
	Client      string    `json:"client"`
	KeyID       int64     `json:"keyId"`
	Protocol    string    `json:"protocol"`
	RemoteAddr  string    `json:"remoteAddr"`
	ConnectedAt time.Time `json:"connectedAt"`
	Channels    []string  `json:"channels"`
}

func newConnectionView(l store.Lease) connectionView {
	channels := l.Channels
	if channels == nil {
		channels = []string{}
	}
	return connectionView{
		ID: l.ID, Node: l.Node, Client: l.Client, KeyID: l.KeyID, Protocol: l.Protocol,
		RemoteAddr: l.RemoteAddr, ConnectedAt: l.ConnectedAt.UTC(), Channels: channels,
	}
}

// connectionList answers GET /admin/connections: the connections of every
// live node, oldest first.
func (h *adminHandler) connectionList(c echo.Context) error {
	leases, err := h.store.LeaseList(c.Request().Context())
	if err != nil {
		return err
	}
	views := make([]connectionView, len(leases))
	for i, l := range leases {
		views[i] = newConnectionView(l)
	}
	return c.JSON(http.StatusOK, map[string][]connectionView{"connections": views})
}

// connectionKick answers DELETE /admin/connections/:id. It marks the
// lease; the owning node closes the connection with 1008 "closed by admin"
// at its next lease check, about a second later. Kicking a connection
// already kicked is a success too, like revoking a revoked key.
func (h *adminHandler) connectionKick(c echo.Context) error {
	id := c.Param("id")
	if err := h.store.LeaseKick(c.Request().Context(), id); err != nil {
		return storeError(err, fmt.Sprintf("connection %q", id))
	}
	h.log.Info("admin: connection kicked", "connection", id)
	return c.NoContent(http.StatusNoContent)
}
