package api_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hubdev/hub/api"
)

func serve(t *testing.T, cfg api.Config, method, path string) *httptest.ResponseRecorder {
	t.Helper()
	rec := httptest.NewRecorder()
	api.New(cfg).ServeHTTP(rec, httptest.NewRequest(method, path, nil))
	return rec
}

func TestHealthz(t *testing.T) {
	t.Parallel()
	rec := serve(t, api.Config{Ready: func(context.Context) error { return errors.New("down") }}, http.MethodGet, "/healthz")
	require.Equal(t, http.StatusOK, rec.Code)
	require.JSONEq(t, `{"status":"ok"}`, rec.Body.String())
}

func TestReadyz(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		ready  func(context.Context) error
		status int
		body   string
	}{
		{"ready", func(context.Context) error { return nil }, http.StatusOK, `{"status":"ok"}`},
		{"database down", func(context.Context) error { return errors.New("database unavailable") },
			http.StatusServiceUnavailable, `{"status":"unavailable","error":"database unavailable"}`},
		{"check hangs", func(ctx context.Context) error { <-ctx.Done(); return errors.New("database unavailable") },
			http.StatusServiceUnavailable, `{"status":"unavailable","error":"database unavailable"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			start := time.Now()
			rec := serve(t, api.Config{Ready: tt.ready, ReadyTimeout: 50 * time.Millisecond}, http.MethodGet, "/readyz")
			require.Equal(t, tt.status, rec.Code)
			require.JSONEq(t, tt.body, rec.Body.String())
			require.Less(t, time.Since(start), 2*time.Second)
		})
	}
}

func TestUnknownRouteIsJSONError(t *testing.T) {
	t.Parallel()
	rec := serve(t, api.Config{Ready: func(context.Context) error { return nil }}, http.MethodGet, "/nope")
	require.Equal(t, http.StatusNotFound, rec.Code)
	require.JSONEq(t, `{"error":"Not Found"}`, rec.Body.String())
}
