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
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

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

// optionalString is a JSON field that tells absent from null: Set is false
// when the field is absent, Value nil when it is null.
type optionalString struct {
	Set   bool
	Value *string
}

// UnmarshalJSON is called for a present field only, null included.
func (o *optionalString) UnmarshalJSON(b []byte) error {
	o.Set = true
	return json.Unmarshal(b, &o.Value)
}

type emergencyRequest struct {
	Emergency *bool          `json:"emergency"`
	Reason    optionalString `json:"reason"`
}

// emergencyView is the emergency shape of SPEC §8.
type emergencyView struct {
	ID          int        `json:"id"`
	Emergency   bool       `json:"emergency"`
	Reason      *string    `json:"reason"`
	TriggeredAt *time.Time `json:"triggeredAt"`
}

func newEmergencyView(e store.Emergency) emergencyView {
	v := emergencyView{ID: e.ID, Emergency: e.Emergency, Reason: e.Reason}
	if e.TriggeredAt != nil {
		t := e.TriggeredAt.UTC()
		v.TriggeredAt = &t
	}
	return v
}

// emergencySet answers POST /admin/emergency. An absent reason keeps the
// stored one; null or "" clears it. The broadcast follows from the
// capture trigger, which records nothing when no value changed.
func (h *adminHandler) emergencySet(c echo.Context) error {
	var req emergencyRequest
	if err := bindJSON(c, &req); err != nil {
		return err
	}
	if req.Emergency == nil {
		return invalid("emergency: required, true or false")
	}
	p := store.EmergencySetParams{Emergency: *req.Emergency, SetReason: req.Reason.Set}
	if r := req.Reason.Value; r != nil && *r != "" {
		if utf8.RuneCountInString(*r) > maxReasonLength {
			return invalid(fmt.Sprintf("reason: must be at most %d characters", maxReasonLength))
		}
		p.Reason = r
	}
	e, err := h.store.EmergencySet(c.Request().Context(), p)
	if err != nil {
		return err
	}
	h.log.Info("admin: emergency set", "emergency", e.Emergency)
	return c.JSON(http.StatusOK, newEmergencyView(e))
}

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
