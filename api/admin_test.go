package api

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/labstack/echo/v4"
	"github.com/stretchr/testify/require"

	"github.com/hubdev/hub/store"
	"github.com/hubdev/hub/store/storetest"
)

const adminTestToken = "admin-test-token"

type adminBundle struct {
	e     *echo.Echo
	pool  *pgxpool.Pool
	store *store.Store
}

type adminLogWriter struct{ t *testing.T }

func (w adminLogWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// setupAdmin serves the admin routes on a fresh database.
func setupAdmin(t *testing.T) *adminBundle {
	t.Helper()
	pool, _ := storetest.NewPool(t)
	st := store.New(pool)
	return &adminBundle{e: newAdminEcho(t, st, slog.New(slog.NewTextHandler(adminLogWriter{t}, nil))), pool: pool, store: st}
}

// newAdminEcho serves the admin routes on st the way New does.
func newAdminEcho(t *testing.T, st AdminStore, log *slog.Logger) *echo.Echo {
	t.Helper()
	return newAdminEchoWith(t, adminOptions{Store: st, Logger: log})
}

// newAdminEchoWith serves the admin routes with o and the test token.
func newAdminEchoWith(t *testing.T, o adminOptions) *echo.Echo {
	t.Helper()
	e := echo.New()
	e.HTTPErrorHandler = errorHandler(o.Logger)
	o.Token = adminTestToken
	adminRoutes(e.Group("/admin"), newAdmin(o))
	return e
}

// serveAdmin sends one request; authorization is the whole header, none
// when empty.
func serveAdmin(e *echo.Echo, method, path, body, authorization string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	if body != "" {
		req.Header.Set(echo.HeaderContentType, echo.MIMEApplicationJSON)
	}
	if authorization != "" {
		req.Header.Set(echo.HeaderAuthorization, authorization)
	}
	rec := httptest.NewRecorder()
	e.ServeHTTP(rec, req)
	return rec
}

// do sends an authorized request.
func (b *adminBundle) do(method, path, body string) *httptest.ResponseRecorder {
	return serveAdmin(b.e, method, path, body, "Bearer "+adminTestToken)
}

// createKey creates a key of client through the API and returns the reply.
func (b *adminBundle) createKey(t *testing.T, client, body string) createdKeyView {
	t.Helper()
	rec := b.do(http.MethodPost, "/admin/clients/"+client+"/keys", body)
	require.Equal(t, http.StatusCreated, rec.Code, rec.Body.String())
	return decodeBody[createdKeyView](t, rec)
}

// lease opens a connection of key on a live node.
func (b *adminBundle) lease(t *testing.T, id string, key int64) {
	t.Helper()
	require.NoError(t, b.store.LeaseAcquire(context.Background(), store.LeaseAcquireParams{
		ID: id, Node: "node-test", KeyID: key, Protocol: store.ProtocolWS,
	}))
}

func decodeBody[T any](t *testing.T, rec *httptest.ResponseRecorder) T {
	t.Helper()
	require.Equal(t, echo.MIMEApplicationJSON, rec.Header().Get(echo.HeaderContentType))
	var v T
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &v), rec.Body.String())
	return v
}

// requireErrorBody checks an error reply: status and {"error":"…"}.
func requireErrorBody(t *testing.T, rec *httptest.ResponseRecorder, status int, contains string) {
	t.Helper()
	require.Equal(t, status, rec.Code, rec.Body.String())
	body := decodeBody[map[string]string](t, rec)
	require.Len(t, body, 1, rec.Body.String())
	require.Contains(t, body["error"], contains)
}

// requireUTC checks a time of a reply: RFC 3339 in UTC, recent.
func requireUTC(t *testing.T, s string) {
	t.Helper()
	require.True(t, strings.HasSuffix(s, "Z"), "not UTC: %s", s)
	ts, err := time.Parse(time.RFC3339Nano, s)
	require.NoError(t, err)
	require.WithinDuration(t, time.Now(), ts, time.Minute)
}

var uuidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

// malformedBodies are refused with 400 by every route that takes a body.
var malformedBodies = []struct{ name, body string }{
	{"empty", ""},
	{"syntax", `{"client":`},
	{"array", `[]`},
	{"null", `null`},
	{"string", `"acme"`},
	{"two objects", `{} {}`},
	{"trailing garbage", `{} x`},
	{"unknown field", `{"client":"acme","active":true,"label":"x","other":1}`},
}

func TestAdminAuth(t *testing.T) {
	t.Parallel()
	// A nil store: a request that gets past the check panics.
	e := newAdminEcho(t, nil, slog.New(slog.NewTextHandler(adminLogWriter{t}, nil)))
	routes := []struct{ method, path, body string }{
		{http.MethodPost, "/admin/clients", `{"client":"acme"}`},
		{http.MethodGet, "/admin/clients", ""},
		{http.MethodPatch, "/admin/clients/acme", `{"active":false}`},
		{http.MethodPost, "/admin/clients/acme/keys", `{}`},
		{http.MethodGet, "/admin/clients/acme/keys", ""},
		{http.MethodDelete, "/admin/keys/1", ""},
		{http.MethodGet, "/admin/connections", ""},
		{http.MethodDelete, "/admin/connections/c1", ""},
		{http.MethodPost, "/admin/emergency", `{"emergency":true}`},
		{http.MethodGet, "/admin/events", ""},
		{http.MethodGet, "/admin/events?limit=0", ""},
		{http.MethodGet, "/admin/stats", ""},
		{http.MethodGet, "/admin/openapi.json", ""},
		{http.MethodGet, "/admin/nope", ""},
	}
	headers := []struct{ name, header, msg string }{
		{"missing", "", "missing admin token"},
		{"wrong token", "Bearer wrong-token", "invalid admin token"},
		{"token prefix", "Bearer " + adminTestToken[:5], "invalid admin token"},
		{"token with suffix", "Bearer " + adminTestToken + "x", "invalid admin token"},
		{"token in other case", "Bearer " + strings.ToUpper(adminTestToken), "invalid admin token"},
		{"empty bearer", "Bearer ", "missing admin token"},
		{"bare token", adminTestToken, "missing admin token"},
		{"basic scheme", "Basic " + adminTestToken, "missing admin token"},
	}
	for _, r := range routes {
		for _, h := range headers {
			t.Run(r.method+" "+r.path+"/"+h.name, func(t *testing.T) {
				t.Parallel()
				rec := serveAdmin(e, r.method, r.path, r.body, h.header)
				requireErrorBody(t, rec, http.StatusUnauthorized, h.msg)
				require.Equal(t, `Bearer realm="hub admin"`, rec.Header().Get(echo.HeaderWWWAuthenticate))
			})
		}
	}
}

func TestAdminAuthAccepts(t *testing.T) {
	t.Parallel()
	b := setupAdmin(t)
	for _, header := range []string{"Bearer " + adminTestToken, "bearer " + adminTestToken, "BEARER  " + adminTestToken} {
		rec := serveAdmin(b.e, http.MethodGet, "/admin/clients", "", header)
		require.Equal(t, http.StatusOK, rec.Code, header)
	}
	requireErrorBody(t, b.do(http.MethodGet, "/admin/nope", ""), http.StatusNotFound, "Not Found")
}

func TestAdminEmptyTokenRefusesAll(t *testing.T) {
	t.Parallel()
	e := echo.New()
	e.HTTPErrorHandler = errorHandler(slog.New(slog.DiscardHandler))
	adminRoutes(e.Group("/admin"), newAdmin(adminOptions{}))
	for _, header := range []string{"", "Bearer ", "Bearer x"} {
		rec := serveAdmin(e, http.MethodGet, "/admin/clients", "", header)
		requireErrorBody(t, rec, http.StatusUnauthorized, "admin token")
	}
}

func TestAdminClientCreate(t *testing.T) {
	t.Parallel()
	b := setupAdmin(t)

	rec := b.do(http.MethodPost, "/admin/clients", `{"client":"acme-1_x"}`)
	require.Equal(t, http.StatusCreated, rec.Code, rec.Body.String())
	got := decodeBody[map[string]any](t, rec)
	requireUTC(t, got["createdAt"].(string))
	delete(got, "createdAt")
	require.Equal(t, map[string]any{"client": "acme-1_x", "active": true, "connections": float64(0)}, got)

	cl, err := b.store.ClientGet(context.Background(), "acme-1_x")
	require.NoError(t, err)
	require.True(t, cl.Active)

	rec = b.do(http.MethodPost, "/admin/clients", `{"client":"acme-1_x"}`)
	requireErrorBody(t, rec, http.StatusConflict, `client "acme-1_x" already exists`)

	rec = b.do(http.MethodPost, "/admin/clients", `{"client":"`+strings.Repeat("z", 64)+`"}`)
	require.Equal(t, http.StatusCreated, rec.Code, rec.Body.String())
}

func TestAdminClientCreateInvalid(t *testing.T) {
	t.Parallel()
	b := setupAdmin(t)
	tests := []struct{ name, body, msg string }{
		{"missing", `{}`, "client: must be 1 to 64 characters"},
		{"null", `{"client":null}`, "client: must be 1 to 64 characters"},
		{"empty", `{"client":""}`, "client: must be 1 to 64 characters"},
		{"too long", `{"client":"` + strings.Repeat("a", 65) + `"}`, "client: must be 1 to 64 characters"},
		{"upper case", `{"client":"Acme"}`, "client: must be 1 to 64 characters"},
		{"space", `{"client":"ac me"}`, "client: must be 1 to 64 characters"},
		{"dot", `{"client":"ac.me"}`, "client: must be 1 to 64 characters"},
		{"slash", `{"client":"ac/me"}`, "client: must be 1 to 64 characters"},
		{"non-ASCII", `{"client":"acmé"}`, "client: must be 1 to 64 characters"},
		{"number", `{"client":5}`, "client: must be a string"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			requireErrorBody(t, b.do(http.MethodPost, "/admin/clients", tt.body), http.StatusUnprocessableEntity, tt.msg)
		})
	}
	for _, tt := range malformedBodies {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			requireErrorBody(t, b.do(http.MethodPost, "/admin/clients", tt.body), http.StatusBadRequest, "")
		})
	}
	t.Run("too large", func(t *testing.T) {
		t.Parallel()
		body := `{"client":"` + strings.Repeat("a", maxAdminBody) + `"}`
		requireErrorBody(t, b.do(http.MethodPost, "/admin/clients", body), http.StatusRequestEntityTooLarge, "larger than")
	})
}

func TestAdminClientList(t *testing.T) {
	t.Parallel()
	b := setupAdmin(t)

	rec := b.do(http.MethodGet, "/admin/clients", "")
	require.Equal(t, http.StatusOK, rec.Code)
	require.JSONEq(t, `{"clients":[]}`, rec.Body.String())

	for _, name := range []string{"beta", "acme"} {
		require.Equal(t, http.StatusCreated, b.do(http.MethodPost, "/admin/clients", `{"client":"`+name+`"}`).Code)
	}
	k := b.createKey(t, "acme", `{}`)
	b.lease(t, "c1", k.ID)
	b.lease(t, "c2", k.ID)
	require.Equal(t, http.StatusOK, b.do(http.MethodPatch, "/admin/clients/beta", `{"active":false}`).Code)

	rec = b.do(http.MethodGet, "/admin/clients", "")
	require.Equal(t, http.StatusOK, rec.Code)
	list := decodeBody[map[string][]map[string]any](t, rec)["clients"]
	require.Len(t, list, 2)
	for _, c := range list {
		requireUTC(t, c["createdAt"].(string))
		delete(c, "createdAt")
	}
	require.Equal(t, []map[string]any{
		{"client": "acme", "active": true, "connections": float64(2)},
		{"client": "beta", "active": false, "connections": float64(0)},
	}, list)
}

func TestAdminClientPatch(t *testing.T) {
	t.Parallel()
	b := setupAdmin(t)
	require.Equal(t, http.StatusCreated, b.do(http.MethodPost, "/admin/clients", `{"client":"acme"}`).Code)
	k := b.createKey(t, "acme", `{}`)
	b.lease(t, "c1", k.ID)

	for _, active := range []bool{false, false, true} {
		rec := b.do(http.MethodPatch, "/admin/clients/acme", fmt.Sprintf(`{"active":%t}`, active))
		require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
		got := decodeBody[clientView](t, rec)
		require.Equal(t, clientView{Client: "acme", Active: active, CreatedAt: got.CreatedAt, Connections: 1}, got)
		require.Equal(t, time.UTC, got.CreatedAt.Location())
		cl, err := b.store.ClientGet(context.Background(), "acme")
		require.NoError(t, err)
		require.Equal(t, active, cl.Active)
	}

	tests := []struct {
		name, path, body string
		status           int
		msg              string
	}{
		{"unknown client", "/admin/clients/nobody", `{"active":false}`, http.StatusNotFound, `client "nobody" not found`},
		{"invalid name", "/admin/clients/No%20Body", `{"active":false}`, http.StatusNotFound, "not found"},
		{"active missing", "/admin/clients/acme", `{}`, http.StatusUnprocessableEntity, "active: required"},
		{"active null", "/admin/clients/acme", `{"active":null}`, http.StatusUnprocessableEntity, "active: required"},
		{"active string", "/admin/clients/acme", `{"active":"no"}`, http.StatusUnprocessableEntity, "active: must be true or false"},
		{"active number", "/admin/clients/acme", `{"active":0}`, http.StatusUnprocessableEntity, "active: must be true or false"},
	}
	for _, tt := range malformedBodies {
		tests = append(tests, struct {
			name, path, body string
			status           int
			msg              string
		}{tt.name, "/admin/clients/acme", tt.body, http.StatusBadRequest, ""})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			requireErrorBody(t, b.do(http.MethodPatch, tt.path, tt.body), tt.status, tt.msg)
		})
	}
}

func TestAdminKeyCreate(t *testing.T) {
	t.Parallel()
	b := setupAdmin(t)
	ctx := context.Background()
	require.Equal(t, http.StatusCreated, b.do(http.MethodPost, "/admin/clients", `{"client":"acme"}`).Code)

	tests := []struct {
		name, body string
		label      string
		max        int
	}{
		{"label and limit", `{"label":"prod","maxConnections":7}`, "prod", 7},
		{"defaults", `{}`, "", 5},
		{"null limit", `{"label":null,"maxConnections":null}`, "", 5},
		{"lowest limit", `{"maxConnections":1}`, "", 1},
		{"highest limit", `{"maxConnections":10000}`, "", 10000},
		{"longest label", `{"label":"` + strings.Repeat("é", maxLabelLength) + `"}`, strings.Repeat("é", maxLabelLength), 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := b.do(http.MethodPost, "/admin/clients/acme/keys", tt.body)
			require.Equal(t, http.StatusCreated, rec.Code, rec.Body.String())
			raw := decodeBody[map[string]any](t, rec)
			require.Contains(t, raw, "revokedAt")
			require.Nil(t, raw["revokedAt"])
			requireUTC(t, raw["createdAt"].(string))

			got := decodeBody[createdKeyView](t, rec)
			require.Regexp(t, uuidRE, got.APIKey)
			require.Equal(t, keyView{
				ID: got.ID, Client: "acme", Label: tt.label, MaxConnections: tt.max, CreatedAt: got.CreatedAt,
			}, got.keyView)

			var hash []byte
			require.NoError(t, b.pool.QueryRow(ctx, `SELECT key_hash FROM hub.api_keys WHERE id = $1`, got.ID).Scan(&hash))
			want := sha256.Sum256([]byte(got.APIKey))
			require.Equal(t, want[:], hash)

			auth, err := b.store.APIKeyLookup(ctx, got.APIKey)
			require.NoError(t, err)
			require.Equal(t, got.ID, auth.ID)
			require.Equal(t, tt.max, auth.MaxConnections)
		})
	}
}

func TestAdminKeyCreateInvalid(t *testing.T) {
	t.Parallel()
	b := setupAdmin(t)
	require.Equal(t, http.StatusCreated, b.do(http.MethodPost, "/admin/clients", `{"client":"acme"}`).Code)
	tests := []struct {
		name, path, body string
		status           int
		msg              string
	}{
		{"zero limit", "/admin/clients/acme/keys", `{"maxConnections":0}`, http.StatusUnprocessableEntity, "maxConnections: must be between 1 and 10000"},
		{"negative limit", "/admin/clients/acme/keys", `{"maxConnections":-1}`, http.StatusUnprocessableEntity, "maxConnections: must be between 1 and 10000"},
		{"limit too high", "/admin/clients/acme/keys", `{"maxConnections":10001}`, http.StatusUnprocessableEntity, "maxConnections: must be between 1 and 10000"},
		{"limit overflows", "/admin/clients/acme/keys", `{"maxConnections":1e30}`, http.StatusUnprocessableEntity, "maxConnections: must be an integer"},
		{"fractional limit", "/admin/clients/acme/keys", `{"maxConnections":2.5}`, http.StatusUnprocessableEntity, "maxConnections: must be an integer"},
		{"limit as string", "/admin/clients/acme/keys", `{"maxConnections":"5"}`, http.StatusUnprocessableEntity, "maxConnections: must be an integer"},
		{"label as number", "/admin/clients/acme/keys", `{"label":5}`, http.StatusUnprocessableEntity, "label: must be a string"},
		{"label too long", "/admin/clients/acme/keys", `{"label":"` + strings.Repeat("a", maxLabelLength+1) + `"}`, http.StatusUnprocessableEntity, "label: must be at most 256 characters"},
		{"unknown client", "/admin/clients/nobody/keys", `{}`, http.StatusNotFound, `client "nobody" not found`},
		{"invalid client name", "/admin/clients/NoBody/keys", `{}`, http.StatusNotFound, `client "NoBody" not found`},
	}
	for _, tt := range malformedBodies {
		tests = append(tests, struct {
			name, path, body string
			status           int
			msg              string
		}{tt.name, "/admin/clients/acme/keys", tt.body, http.StatusBadRequest, ""})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			requireErrorBody(t, b.do(http.MethodPost, tt.path, tt.body), tt.status, tt.msg)
		})
	}
	t.Run("nothing stored", func(t *testing.T) {
		t.Parallel()
		var n int
		require.NoError(t, b.pool.QueryRow(context.Background(), `SELECT count(*) FROM hub.api_keys`).Scan(&n))
		require.Zero(t, n)
	})
}

func TestAdminKeyList(t *testing.T) {
	t.Parallel()
	b := setupAdmin(t)
	for _, name := range []string{"acme", "beta"} {
		require.Equal(t, http.StatusCreated, b.do(http.MethodPost, "/admin/clients", `{"client":"`+name+`"}`).Code)
	}
	rec := b.do(http.MethodGet, "/admin/clients/acme/keys", "")
	require.Equal(t, http.StatusOK, rec.Code)
	require.JSONEq(t, `{"keys":[]}`, rec.Body.String())

	k1 := b.createKey(t, "acme", `{"label":"one","maxConnections":3}`)
	k2 := b.createKey(t, "acme", `{"label":"two"}`)
	other := b.createKey(t, "beta", `{}`)
	b.lease(t, "c1", k1.ID)
	b.lease(t, "c2", k1.ID)
	b.lease(t, "c3", other.ID)
	require.Equal(t, http.StatusNoContent, b.do(http.MethodDelete, fmt.Sprintf("/admin/keys/%d", k2.ID), "").Code)

	rec = b.do(http.MethodGet, "/admin/clients/acme/keys", "")
	require.Equal(t, http.StatusOK, rec.Code)
	for _, k := range []createdKeyView{k1, k2, other} {
		require.NotContains(t, rec.Body.String(), k.APIKey)
		require.NotContains(t, rec.Body.String(), strings.ReplaceAll(k.APIKey, "-", ""))
	}
	raw := decodeBody[map[string][]map[string]any](t, rec)["keys"]
	require.Len(t, raw, 2)
	for _, k := range raw {
		require.NotContains(t, k, "apiKey")
		require.Contains(t, k, "revokedAt")
	}
	require.Nil(t, raw[0]["revokedAt"])
	requireUTC(t, raw[1]["revokedAt"].(string))

	keys := decodeBody[map[string][]keyView](t, rec)["keys"]
	require.Equal(t, []keyView{
		{ID: k1.ID, Client: "acme", Label: "one", MaxConnections: 3, CreatedAt: k1.CreatedAt, Connections: 2},
		{ID: k2.ID, Client: "acme", Label: "two", MaxConnections: 5, CreatedAt: k2.CreatedAt, RevokedAt: keys[1].RevokedAt, Connections: 0},
	}, keys)

	requireErrorBody(t, b.do(http.MethodGet, "/admin/clients/nobody/keys", ""), http.StatusNotFound, `client "nobody" not found`)
	requireErrorBody(t, b.do(http.MethodGet, "/admin/clients/No%20Body/keys", ""), http.StatusNotFound, "not found")
}

func TestAdminKeyRevoke(t *testing.T) {
	t.Parallel()
	b := setupAdmin(t)
	ctx := context.Background()
	require.Equal(t, http.StatusCreated, b.do(http.MethodPost, "/admin/clients", `{"client":"acme"}`).Code)
	k := b.createKey(t, "acme", `{}`)
	path := fmt.Sprintf("/admin/keys/%d", k.ID)

	rec := b.do(http.MethodDelete, path, "")
	require.Equal(t, http.StatusNoContent, rec.Code, rec.Body.String())
	require.Empty(t, rec.Body.String())
	auth, err := b.store.APIKeyLookup(ctx, k.APIKey)
	require.NoError(t, err)
	require.NotNil(t, auth.RevokedAt)

	rec = b.do(http.MethodDelete, path, "")
	require.Equal(t, http.StatusNoContent, rec.Code, "revoking again")
	again, err := b.store.APIKeyLookup(ctx, k.APIKey)
	require.NoError(t, err)
	require.Equal(t, *auth.RevokedAt, *again.RevokedAt, "revokedAt is kept")

	tests := []struct {
		name, id string
		status   int
		msg      string
	}{
		{"unknown", fmt.Sprint(k.ID + 1), http.StatusNotFound, fmt.Sprintf("api key %d not found", k.ID+1)},
		{"zero", "0", http.StatusNotFound, "api key 0 not found"},
		{"negative", "-1", http.StatusNotFound, "api key -1 not found"},
		{"word", "abc", http.StatusBadRequest, "id: must be an integer"},
		{"fraction", "1.5", http.StatusBadRequest, "id: must be an integer"},
		{"overflow", "99999999999999999999", http.StatusBadRequest, "id: must be an integer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			requireErrorBody(t, b.do(http.MethodDelete, "/admin/keys/"+tt.id, ""), tt.status, tt.msg)
		})
	}
}

// failingStore fails every call it implements; the others panic.
type failingStore struct{ AdminStore }

var errSecret = errors.New("connection to 10.0.0.7 refused: password authentication failed")

func (failingStore) ClientList(context.Context) ([]store.Client, error) { return nil, errSecret }
func (failingStore) ClientCreate(context.Context, string) (store.Client, error) {
	return store.Client{}, fmt.Errorf("create client: %w", errSecret)
}

func (failingStore) LeaseList(context.Context) ([]store.Lease, error) { return nil, errSecret }
func (failingStore) LeaseKick(context.Context, string) error          { return errSecret }
func (failingStore) EmergencySet(context.Context, store.EmergencySetParams) (store.Emergency, error) {
	return store.Emergency{}, errSecret
}
func (failingStore) EventList(context.Context, store.EventListParams) ([]store.Event, error) {
	return nil, errSecret
}

func TestAdminInternalError(t *testing.T) {
	t.Parallel()
	var logs strings.Builder
	e := newAdminEcho(t, failingStore{}, slog.New(slog.NewTextHandler(&logs, nil)))
	for _, r := range []struct{ method, path, body string }{
		{http.MethodGet, "/admin/clients", ""},
		{http.MethodPost, "/admin/clients", `{"client":"acme"}`},
		{http.MethodGet, "/admin/connections", ""},
		{http.MethodDelete, "/admin/connections/c1", ""},
		{http.MethodPost, "/admin/emergency", `{"emergency":true}`},
		{http.MethodGet, "/admin/events", ""},
	} {
		rec := serveAdmin(e, r.method, r.path, r.body, "Bearer "+adminTestToken)
		require.Equal(t, http.StatusInternalServerError, rec.Code)
		require.JSONEq(t, `{"error":"internal error"}`, rec.Body.String())
	}
	require.Contains(t, logs.String(), "password authentication failed")
	require.NotContains(t, logs.String(), adminTestToken)
}

func TestAdminLogsNoSecrets(t *testing.T) {
	t.Parallel()
	pool, _ := storetest.NewPool(t)
	var logs strings.Builder
	b := &adminBundle{pool: pool, store: store.New(pool)}
	b.e = newAdminEcho(t, b.store, slog.New(slog.NewTextHandler(&logs, nil)))
	require.Equal(t, http.StatusCreated, b.do(http.MethodPost, "/admin/clients", `{"client":"acme"}`).Code)
	k := b.createKey(t, "acme", `{}`)
	require.Equal(t, http.StatusNoContent, b.do(http.MethodDelete, fmt.Sprintf("/admin/keys/%d", k.ID), "").Code)
	require.Contains(t, logs.String(), "api key revoked")
	require.NotContains(t, logs.String(), k.APIKey)
	require.NotContains(t, logs.String(), adminTestToken)
}

// FuzzAdminBindJSON: a request body never panics the decoder, and is
// either accepted or refused with 400, 413 or 422.
func FuzzAdminBindJSON(f *testing.F) {
	for _, s := range []string{``, `{}`, `{"label":"x","maxConnections":5}`, `{"maxConnections":1e99}`, `[]`, `{} {}`, `{"x":1}`, `null`} {
		f.Add(s)
	}
	e := echo.New()
	f.Fuzz(func(t *testing.T, body string) {
		req := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(body))
		c := e.NewContext(req, httptest.NewRecorder())
		var dst keyCreateRequest
		err := bindJSON(c, &dst)
		if err == nil {
			return
		}
		var he *echo.HTTPError
		require.ErrorAs(t, err, &he)
		require.Contains(t, []int{http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusUnprocessableEntity}, he.Code)
	})
}

// settle waits until no committed event is held back by another test's
// open transaction on the shared cluster, so that the event log reads
// everything committed so far (SPEC §2.3).
func (b *adminBundle) settle(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		backlog, err := b.store.BacklogCheck(context.Background())
		require.NoError(t, err)
		if !backlog.HeldBack {
			return
		}
		require.True(t, time.Now().Before(deadline), "events held back for 30s")
		time.Sleep(5 * time.Millisecond) // polling a condition the database holds
	}
}

// exec runs SQL statements on the test database.
func (b *adminBundle) exec(t *testing.T, sql ...string) {
	t.Helper()
	storetest.Exec(t, b.pool, sql...)
}

func TestAdminConnectionList(t *testing.T) {
	t.Parallel()
	b := setupAdmin(t)
	ctx := context.Background()

	rec := b.do(http.MethodGet, "/admin/connections", "")
	require.Equal(t, http.StatusOK, rec.Code)
	require.JSONEq(t, `{"connections":[]}`, rec.Body.String())

	require.Equal(t, http.StatusCreated, b.do(http.MethodPost, "/admin/clients", `{"client":"acme"}`).Code)
	k := b.createKey(t, "acme", `{"maxConnections":10}`)
	for _, p := range []store.LeaseAcquireParams{
		{ID: "c1", Node: "node-a", KeyID: k.ID, Protocol: store.ProtocolWS, RemoteAddr: "10.0.0.1:5000", Channels: []string{"orders", "scores"}},
		{ID: "c2", Node: "node-b", KeyID: k.ID, Protocol: store.ProtocolSSE},
		{ID: "c3", Node: "node-dead", KeyID: k.ID, Protocol: store.ProtocolEOSPark},
	} {
		require.NoError(t, b.store.LeaseAcquire(ctx, p))
	}
	b.exec(t, `UPDATE hub.nodes SET heartbeat_at = now() - interval '1 hour' WHERE node = 'node-dead'`)

	rec = b.do(http.MethodGet, "/admin/connections", "")
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	list := decodeBody[map[string][]map[string]any](t, rec)["connections"]
	require.Len(t, list, 2, "only live nodes' connections")
	for _, c := range list {
		requireUTC(t, c["connectedAt"].(string))
		delete(c, "connectedAt")
	}
	require.Equal(t, []map[string]any{
		{"id": "c1", "node": "node-a", "client": "acme", "keyId": float64(k.ID), "protocol": "ws",
			"remoteAddr": "10.0.0.1:5000", "channels": []any{"orders", "scores"}},
		{"id": "c2", "node": "node-b", "client": "acme", "keyId": float64(k.ID), "protocol": "sse",
			"remoteAddr": "", "channels": []any{}},
	}, list)
}

func TestAdminConnectionKick(t *testing.T) {
	t.Parallel()
	b := setupAdmin(t)
	ctx := context.Background()
	require.Equal(t, http.StatusCreated, b.do(http.MethodPost, "/admin/clients", `{"client":"acme"}`).Code)
	k := b.createKey(t, "acme", `{}`)
	b.lease(t, "c1", k.ID)
	b.lease(t, "c2", k.ID)
	require.NoError(t, b.store.LeaseAcquire(ctx, store.LeaseAcquireParams{ID: "c3", Node: "node-dead", KeyID: k.ID, Protocol: store.ProtocolWS}))
	b.exec(t, `UPDATE hub.nodes SET heartbeat_at = now() - interval '1 hour' WHERE node = 'node-dead'`)

	for range 2 { // kicking a connection that is closing already is a success
		rec := b.do(http.MethodDelete, "/admin/connections/c1", "")
		require.Equal(t, http.StatusNoContent, rec.Code, rec.Body.String())
		require.Empty(t, rec.Body.String())
	}
	closing, err := b.store.LeaseCloseList(ctx, "node-test")
	require.NoError(t, err)
	require.Equal(t, []store.LeaseClose{{ID: "c1", Reason: store.LeaseCloseKicked}}, closing, "only c1, with the reason sent to the client")

	for _, id := range []string{"nope", "c3", "%20"} {
		requireErrorBody(t, b.do(http.MethodDelete, "/admin/connections/"+id, ""), http.StatusNotFound, "not found")
	}
	requireErrorBody(t, b.do(http.MethodDelete, "/admin/connections/nope", ""), http.StatusNotFound, `connection "nope" not found`)
}

// emergencyEvents counts the events recorded for the emergency row; a
// committed row is visible at once, held back or not.
func (b *adminBundle) emergencyEvents(t *testing.T) int {
	t.Helper()
	var n int
	require.NoError(t, b.pool.QueryRow(context.Background(), `SELECT count(*) FROM hub.events WHERE channel = 'emergency'`).Scan(&n))
	return n
}

// emergencyRow reads public.emergency as the API shows it.
func (b *adminBundle) emergencyRow(t *testing.T) emergencyView {
	t.Helper()
	var v emergencyView
	require.NoError(t, b.pool.QueryRow(context.Background(),
		`SELECT id, emergency, reason, triggered_at FROM public.emergency`).Scan(&v.ID, &v.Emergency, &v.Reason, &v.TriggeredAt))
	if v.TriggeredAt != nil {
		*v.TriggeredAt = v.TriggeredAt.UTC()
	}
	return v
}

func TestAdminEmergency(t *testing.T) {
	t.Parallel()
	b := setupAdmin(t)
	require.Equal(t, emergencyView{ID: 1}, b.emergencyRow(t), "the migration's row")
	require.Zero(t, b.emergencyEvents(t))

	post := func(body string) emergencyView {
		t.Helper()
		rec := b.do(http.MethodPost, "/admin/emergency", body)
		require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
		raw := decodeBody[map[string]any](t, rec)
		require.Contains(t, raw, "reason")
		require.Contains(t, raw, "triggeredAt")
		got := decodeBody[emergencyView](t, rec)
		require.Equal(t, b.emergencyRow(t), got, "the reply is the row")
		return got
	}
	reason := func(s string) *string { return &s }

	on := post(`{"emergency":true,"reason":"maintenance"}`)
	require.True(t, on.Emergency)
	require.Equal(t, reason("maintenance"), on.Reason)
	require.NotNil(t, on.TriggeredAt)
	requireUTC(t, on.TriggeredAt.Format(time.RFC3339Nano))
	require.Equal(t, 1, b.emergencyEvents(t), "a change is broadcast")
	var payload, old map[string]any
	var id int64
	require.NoError(t, b.pool.QueryRow(context.Background(),
		`SELECT id FROM hub.events WHERE channel = 'emergency' ORDER BY id DESC LIMIT 1`).Scan(&id))
	last := loggedEvent(t, b.store, id)
	require.NoError(t, json.Unmarshal(last.Payload, &payload))
	require.NoError(t, json.Unmarshal(last.Old, &old))
	require.Equal(t, map[string]any{"id": 1.0, "emergency": true, "reason": "maintenance", "triggeredAt": payload["triggeredAt"]}, payload)
	require.Equal(t, map[string]any{"emergency": false, "reason": nil, "triggeredAt": nil}, old)

	steps := []struct {
		name, body string
		want       emergencyView
		events     int
	}{
		{"repeat", `{"emergency":true,"reason":"maintenance"}`, on, 1},
		{"repeat without reason", `{"emergency":true}`, on, 1},
		{"new reason keeps triggeredAt", `{"emergency":true,"reason":"still down"}`,
			emergencyView{ID: 1, Emergency: true, Reason: reason("still down"), TriggeredAt: on.TriggeredAt}, 2},
		{"off keeps reason and triggeredAt", `{"emergency":false}`,
			emergencyView{ID: 1, Reason: reason("still down"), TriggeredAt: on.TriggeredAt}, 3},
		{"null clears reason", `{"emergency":false,"reason":null}`,
			emergencyView{ID: 1, TriggeredAt: on.TriggeredAt}, 4},
		{"empty reason is no reason", `{"emergency":false,"reason":""}`,
			emergencyView{ID: 1, TriggeredAt: on.TriggeredAt}, 4},
	}
	for _, s := range steps {
		got := post(s.body)
		require.Equal(t, s.want, got, s.name)
		require.Equal(t, s.events, b.emergencyEvents(t), s.name)
	}

	again := post(`{"emergency":true,"reason":"again"}`)
	require.True(t, on.TriggeredAt.Before(*again.TriggeredAt), "turning on again moves triggeredAt")
	require.Equal(t, 5, b.emergencyEvents(t))
}

func TestAdminEmergencyInvalid(t *testing.T) {
	t.Parallel()
	b := setupAdmin(t)
	tests := []struct {
		name, body string
		status     int
		msg        string
	}{
		{"emergency missing", `{"reason":"x"}`, http.StatusUnprocessableEntity, "emergency: required, true or false"},
		{"emergency null", `{"emergency":null}`, http.StatusUnprocessableEntity, "emergency: required, true or false"},
		{"emergency string", `{"emergency":"true"}`, http.StatusUnprocessableEntity, "emergency: must be true or false"},
		{"emergency number", `{"emergency":1}`, http.StatusUnprocessableEntity, "emergency: must be true or false"},
		{"reason number", `{"emergency":true,"reason":5}`, http.StatusUnprocessableEntity, "reason: must be a string"},
		{"reason object", `{"emergency":true,"reason":{}}`, http.StatusUnprocessableEntity, "reason: must be a string"},
		{"reason too long", `{"emergency":true,"reason":"` + strings.Repeat("é", maxReasonLength+1) + `"}`,
			http.StatusUnprocessableEntity, "reason: must be at most 1000 characters"},
	}
	for _, tt := range malformedBodies {
		tests = append(tests, struct {
			name, body string
			status     int
			msg        string
		}{tt.name, tt.body, http.StatusBadRequest, ""})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			requireErrorBody(t, b.do(http.MethodPost, "/admin/emergency", tt.body), tt.status, tt.msg)
		})
	}
	t.Run("nothing changed", func(t *testing.T) {
		t.Parallel()
		require.Equal(t, emergencyView{ID: 1}, b.emergencyRow(t))
		require.Zero(t, b.emergencyEvents(t))
	})
}

// eventsPage gets a page of /admin/events, checking its shape.
func (b *adminBundle) eventsPage(t *testing.T, query string) ([]map[string]any, string) {
	t.Helper()
	rec := b.do(http.MethodGet, "/admin/events"+query, "")
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	page := decodeBody[map[string]any](t, rec)
	raw, ok := page["events"].([]any)
	require.True(t, ok, "events is a list: %s", rec.Body.String())
	events := make([]map[string]any, len(raw))
	for i, e := range raw {
		events[i] = e.(map[string]any)
	}
	if len(events) == 0 {
		require.NotContains(t, page, "next", "no next on an empty page")
		return events, ""
	}
	require.Equal(t, events[len(events)-1]["id"], page["next"], "next is the last event's position")
	return events, page["next"].(string)
}

func TestAdminEvents(t *testing.T) {
	t.Parallel()
	b := setupAdmin(t)
	b.exec(t,
		`INSERT INTO orders (order_id, client, account_id, order_status) VALUES (1, 'acme', 'acc-1', 'new')`,
		`INSERT INTO orders (order_id, client, account_id, order_status) VALUES (2, 'beta', 'acc-2', 'new')`,
		`UPDATE orders SET order_status = 'matched' WHERE order_id = 1`,
		`INSERT INTO scores (fixture_id, live) VALUES ('f1', false)`, // scores capture only UPDATE
		`UPDATE scores SET live = true WHERE fixture_id = 'f1'`,
		`INSERT INTO bets (bet_id, client, bet_status) VALUES (9, 'acme', 'placed')`, // no account: no subject
	)
	b.settle(t)

	all, next := b.eventsPage(t, "")
	require.Len(t, all, 5)
	var (
		last store.Position
		ids  []string
	)
	for _, e := range all {
		pos, err := store.ParsePosition(e["id"].(string))
		require.NoError(t, err)
		require.True(t, last.Less(pos), "position order")
		last = pos
		ids = append(ids, pos.String())
		requireUTC(t, e["createdAt"].(string))
		delete(e, "id")
		delete(e, "createdAt")
		if e["event"] == "INSERT" {
			require.NotContains(t, e, "old", "old is absent on INSERT")
		}
		p := e["payload"].(map[string]any)
		e["payload"] = map[string]any{"key": p["orderId"], "status": p["orderStatus"], "live": p["live"], "bet": p["betId"]}
	}
	require.Equal(t, last.String(), next)
	require.Equal(t, []map[string]any{
		{"channel": "orders", "event": "INSERT", "client": "acme", "subject": "acc-1", "payload": map[string]any{"key": 1.0, "status": "new", "live": nil, "bet": nil}},
		{"channel": "orders", "event": "INSERT", "client": "beta", "subject": "acc-2", "payload": map[string]any{"key": 2.0, "status": "new", "live": nil, "bet": nil}},
		{"channel": "orders", "event": "UPDATE", "client": "acme", "subject": "acc-1", "payload": map[string]any{"key": 1.0, "status": "matched", "live": nil, "bet": nil},
			"old": map[string]any{"orderStatus": "new"}},
		{"channel": "scores", "event": "UPDATE", "client": nil, "subject": "f1", "payload": map[string]any{"key": nil, "status": nil, "live": true, "bet": nil},
			"old": map[string]any{"live": false}},
		{"channel": "bets", "event": "INSERT", "client": "acme", "subject": nil, "payload": map[string]any{"key": nil, "status": nil, "live": nil, "bet": 9.0}},
	}, all)

	t.Run("paging", func(t *testing.T) {
		t.Parallel()
		full, _ := b.eventsPage(t, "")
		var got []any
		after, pages := "", 0
		for {
			page, next := b.eventsPage(t, "?limit=2&after="+after)
			if len(page) == 0 {
				break
			}
			require.LessOrEqual(t, len(page), 2)
			for _, e := range page {
				got = append(got, e["id"])
			}
			after, pages = next, pages+1
		}
		require.Equal(t, 3, pages)
		var want []any
		for _, e := range full {
			want = append(want, e["id"])
		}
		require.Equal(t, want, got, "every event once, in order")

		page, _ := b.eventsPage(t, "?after="+full[1]["id"].(string))
		require.Len(t, page, 3, "after is exclusive")
		page, _ = b.eventsPage(t, "?after=0-0")
		require.Len(t, page, 5)
		page, _ = b.eventsPage(t, "?after=18446744073709551615-9223372036854775807")
		require.Empty(t, page)
	})

	t.Run("filters", func(t *testing.T) {
		t.Parallel()
		tests := []struct {
			query string
			want  []string // channel/event/client of each event
		}{
			{"?channel=orders", []string{"orders/INSERT/acme", "orders/INSERT/beta", "orders/UPDATE/acme"}},
			{"?client=acme", []string{"orders/INSERT/acme", "orders/UPDATE/acme", "bets/INSERT/acme"}},
			{"?channel=orders&client=beta", []string{"orders/INSERT/beta"}},
			{"?channel=scores", []string{"scores/UPDATE/<nil>"}},
			{"?channel=orders&limit=1", []string{"orders/INSERT/acme"}},
			{"?client=acme&limit=1&after=" + ids[0], []string{"orders/UPDATE/acme"}},
			{"?channel=nope", []string{}},
			{"?client=nobody", []string{}},
			{"?channel=&client=&after=&limit=", []string{"orders/INSERT/acme", "orders/INSERT/beta", "orders/UPDATE/acme", "scores/UPDATE/<nil>", "bets/INSERT/acme"}},
		}
		for _, tt := range tests {
			page, _ := b.eventsPage(t, tt.query)
			got := []string{}
			for _, e := range page {
				got = append(got, fmt.Sprintf("%v/%v/%v", e["channel"], e["event"], e["client"]))
			}
			require.Equal(t, tt.want, got, tt.query)
		}
	})

	t.Run("limit", func(t *testing.T) {
		t.Parallel()
		for _, n := range []int{1, 3, 1000} {
			page, _ := b.eventsPage(t, fmt.Sprintf("?limit=%d", n))
			require.Len(t, page, min(n, 5))
		}
	})
}

func TestAdminEventsInvalid(t *testing.T) {
	t.Parallel()
	b := setupAdmin(t)
	tests := []struct {
		name, query string
		status      int
		msg         string
	}{
		{"limit zero", "limit=0", http.StatusUnprocessableEntity, "limit: must be between 1 and 1000"},
		{"limit negative", "limit=-1", http.StatusUnprocessableEntity, "limit: must be between 1 and 1000"},
		{"limit too high", "limit=1001", http.StatusUnprocessableEntity, "limit: must be between 1 and 1000"},
		{"limit overflows", "limit=99999999999999999999", http.StatusUnprocessableEntity, "limit: must be between 1 and 1000"},
		{"limit word", "limit=ten", http.StatusBadRequest, "limit: must be an integer"},
		{"limit fraction", "limit=1.5", http.StatusBadRequest, "limit: must be an integer"},
		{"after word", "after=abc", http.StatusBadRequest, `after: must be a position "<xid>-<id>"`},
		{"after half", "after=12-", http.StatusBadRequest, "after: must be a position"},
		{"after signed", "after=+1-2", http.StatusBadRequest, "after: must be a position"},
		{"after too big", "after=18446744073709551616-1", http.StatusBadRequest, "after: must be a position"},
		{"unknown parameter", "chanel=orders", http.StatusBadRequest, `unknown query parameter "chanel"`},
		{"repeated parameter", "limit=1&limit=2", http.StatusBadRequest, `query parameter "limit" given more than once`},
		{"channel with space", "channel=a%20b", http.StatusUnprocessableEntity, "channel: must be 1 to 64 characters"},
		{"channel too long", "channel=" + strings.Repeat("a", 65), http.StatusUnprocessableEntity, "channel: must be 1 to 64 characters"},
		{"client upper case", "client=Acme", http.StatusUnprocessableEntity, "client: must be 1 to 64 characters"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			requireErrorBody(t, b.do(http.MethodGet, "/admin/events?"+tt.query, ""), tt.status, tt.msg)
		})
	}
}

// fixedStats is a StatsSource with set figures.
type fixedStats AdminStats

func (s fixedStats) AdminStats() AdminStats { return AdminStats(s) }

func TestAdminStats(t *testing.T) {
	t.Parallel()
	log := slog.New(slog.NewTextHandler(adminLogWriter{t}, nil))
	e := newAdminEchoWith(t, adminOptions{Logger: log, Stats: fixedStats{
		Node: "node-a", Connections: ConnectionCounts{WS: 3, EOSPark: 1, SSE: 2},
		EventsPerSecond: 12.5, DeliveriesPerSecond: 40, ReaderLag: 250 * time.Millisecond,
		Position: store.Position{Xid: 731, ID: 42},
	}})
	rec := serveAdmin(e, http.MethodGet, "/admin/stats", "", "Bearer "+adminTestToken)
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	require.JSONEq(t, `{"node":"node-a","connections":{"ws":3,"eospark":1,"sse":2},
		"eventsPerSecond":12.5,"deliveriesPerSecond":40,"readerLagSeconds":0.25,"position":"731-42"}`, rec.Body.String())

	idle := newAdminEchoWith(t, adminOptions{Logger: log, Stats: fixedStats{Node: "node-b"}})
	rec = serveAdmin(idle, http.MethodGet, "/admin/stats", "", "Bearer "+adminTestToken)
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	require.JSONEq(t, `{"node":"node-b","connections":{"ws":0,"eospark":0,"sse":0},
		"eventsPerSecond":0,"deliveriesPerSecond":0,"readerLagSeconds":0,"position":"0-0"}`, rec.Body.String())

	none := newAdminEchoWith(t, adminOptions{Logger: log})
	requireErrorBody(t, serveAdmin(none, http.MethodGet, "/admin/stats", "", "Bearer "+adminTestToken),
		http.StatusServiceUnavailable, "stats are not available")
}
