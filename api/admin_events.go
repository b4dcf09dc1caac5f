package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/hubdev/hub/store"
)

// eventView is the event shape of SPEC §8; old is absent unless the event
// is an UPDATE, and client and subject are null when the event has none.
type eventView struct {
	ID        string          `json:"id"`
	Channel   string          `json:"channel"`
	Event     string          `json:"event"`
	Client    *string         `json:"client"`
	Subject   *string         `json:"subject"`
	Payload   json.RawMessage `json:"payload"`
	Old       json.RawMessage `json:"old,omitempty"`
	CreatedAt time.Time       `json:"createdAt"`
}

func newEventView(e store.Event) eventView {
	return eventView{
		ID: e.Pos.String(), Channel: e.Channel, Event: e.Op, Client: nullIfEmpty(e.Client),
		Subject: nullIfEmpty(e.Subject), Payload: e.Payload, Old: e.Old, CreatedAt: e.CreatedAt.UTC(),
	}
}

func nullIfEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

type eventPage struct {
	Events []eventView `json:"events"`
	Next   string      `json:"next,omitempty"` // the last event's position; absent on an empty page
}

// eventList answers GET /admin/events?after=&channel=&client=&limit=. The
// page holds what every older transaction has finished with, so paging
// with next misses nothing committed later.
func (h *adminHandler) eventList(c echo.Context) error {
	p, err := eventListParams(c.QueryParams())
	if err != nil {
		return err
	}
	events, err := h.store.EventList(c.Request().Context(), p)
	if err != nil {
		return err
	}
	page := eventPage{Events: make([]eventView, len(events))}
	for i, e := range events {
		page.Events[i] = newEventView(e)
	}
	if len(events) > 0 {
		page.Next = page.Events[len(events)-1].ID
	}
	return c.JSON(http.StatusOK, page)
}

// eventListParams reads the query of GET /admin/events. Unknown or
// repeated parameters and values that do not parse are 400 (a misspelled
// filter must not widen the page silently); values out of range are 422.
func eventListParams(q url.Values) (store.EventListParams, error) {
	p := store.EventListParams{Limit: defaultEventsLimit}
	for name, values := range q {
		switch {
		case name != "after" && name != "channel" && name != "client" && name != "limit":
			return p, echo.NewHTTPError(http.StatusBadRequest, fmt.Sprintf("unknown query parameter %q", name))
		case len(values) > 1:
			return p, echo.NewHTTPError(http.StatusBadRequest, fmt.Sprintf("query parameter %q given more than once", name))
		}
	}
	if s := q.Get("after"); s != "" {
		pos, err := store.ParsePosition(s)
		if err != nil {
			return p, echo.NewHTTPError(http.StatusBadRequest, `after: must be a position "<xid>-<id>"`)
		}
		p.After = pos
	}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil && !errors.Is(err, strconv.ErrRange) {
			return p, echo.NewHTTPError(http.StatusBadRequest, "limit: must be an integer")
		}
		if err != nil || n < 1 || n > maxEventsLimit {
			return p, invalid(fmt.Sprintf("limit: must be between 1 and %d", maxEventsLimit))
		}
		p.Limit = n
	}
	if p.Channel = q.Get("channel"); p.Channel != "" && !validChannelName(p.Channel) {
		return p, invalid("channel: must be 1 to 64 characters of A-Z, a-z, 0-9, _, . and -")
	}
	if p.Client = q.Get("client"); p.Client != "" && !validClientName(p.Client) {
		return p, invalid("client: must be 1 to 64 characters of a-z, 0-9, _ and -")
	}
	return p, nil
}

// validChannelName reports whether name can name a channel: 1–64
// characters of A-Z, a-z, 0-9, _, . and - (the check of hub.channels).
func validChannelName(name string) bool {
	if len(name) < 1 || len(name) > 64 {
		return false
	}
	for _, r := range []byte(name) {
		if (r < 'a' || r > 'z') && (r < 'A' || r > 'Z') && (r < '0' || r > '9') && r != '_' && r != '.' && r != '-' {
			return false
		}
	}
	return true
}
