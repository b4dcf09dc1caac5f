package api

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// openAPIDoc is the part of the document the tests read.
type openAPIDoc struct {
	OpenAPI string                                `json:"openapi"`
	Paths   map[string]map[string]json.RawMessage `json:"paths"`
}

func loadOpenAPI(t *testing.T) openAPIDoc {
	t.Helper()
	var doc openAPIDoc
	require.NoError(t, json.Unmarshal(openAPIJSON, &doc))
	require.True(t, strings.HasPrefix(doc.OpenAPI, "3."), "OpenAPI 3: %q", doc.OpenAPI)
	return doc
}

var openAPIMethods = []string{
	http.MethodGet, http.MethodPut, http.MethodPost, http.MethodDelete,
	http.MethodOptions, http.MethodHead, http.MethodPatch, http.MethodTrace,
}

var echoParam = regexp.MustCompile(`:([A-Za-z0-9_]+)`)

// documented reports whether the document must describe a route: every
// admin route, /healthz and /readyz.
func documented(path string) bool {
	return path == "/healthz" || path == "/readyz" || strings.HasPrefix(path, "/admin/")
}

// TestOpenAPIMatchesRoutes: the document describes exactly the routes New
// serves under /admin, plus /healthz and /readyz.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	t.Parallel()
	e := New(Config{
		Ready: func(context.Context) error { return nil }, AdminToken: adminTestToken, Admin: failingStore{},
	})
	var served []string
	for _, r := range e.Routes() {
		// Group middleware registers catch-all routes of its own, under a
		// method that is not HTTP's.
		if !slices.Contains(openAPIMethods, r.Method) || !documented(r.Path) {
			continue
		}
		served = append(served, r.Method+" "+echoParam.ReplaceAllString(r.Path, "{$1}"))
	}
	var described []string
	for path, ops := range loadOpenAPI(t).Paths {
		for method := range ops {
			if m := strings.ToUpper(method); slices.Contains(openAPIMethods, m) {
				described = append(described, m+" "+path)
			}
		}
	}
	slices.Sort(served)
	slices.Sort(described)
	require.NotEmpty(t, served)
	require.Equal(t, served, described, "routes served (left) and documented (right)")
}

// TestOpenAPIParameters: every path parameter is declared, and every
// declared one is in the path.
func TestOpenAPIParameters(t *testing.T) {
	t.Parallel()
	braces := regexp.MustCompile(`\{([^}]+)\}`)
	for path, ops := range loadOpenAPI(t).Paths {
		var want []string
		for _, m := range braces.FindAllStringSubmatch(path, -1) {
			want = append(want, m[1])
		}
		for method, raw := range ops {
			var op struct {
				OperationID string `json:"operationId"`
				Parameters  []struct {
					Name     string `json:"name"`
					In       string `json:"in"`
					Required bool   `json:"required"`
				} `json:"parameters"`
				Responses map[string]json.RawMessage `json:"responses"`
			}
			require.NoError(t, json.Unmarshal(raw, &op), "%s %s", method, path)
			require.NotEmpty(t, op.OperationID, "%s %s", method, path)
			require.NotEmpty(t, op.Responses, "%s %s", method, path)
			var got []string
			for _, p := range op.Parameters {
				if p.In == "path" {
					require.True(t, p.Required, "%s %s: path parameter %s", method, path, p.Name)
					got = append(got, p.Name)
				}
			}
			require.ElementsMatch(t, want, got, "%s %s", method, path)
		}
	}
}

// TestOpenAPIRefs: every $ref names a component that exists.
func TestOpenAPIRefs(t *testing.T) {
	t.Parallel()
	var doc map[string]any
	require.NoError(t, json.Unmarshal(openAPIJSON, &doc))
	var walk func(v any)
	refs := 0
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			if ref, ok := v["$ref"].(string); ok {
				refs++
				parts := strings.Split(strings.TrimPrefix(ref, "#/"), "/")
				var node any = doc
				for _, p := range parts {
					m, ok := node.(map[string]any)
					require.True(t, ok, "%s", ref)
					node, ok = m[p]
					require.True(t, ok, "%s does not resolve", ref)
				}
			}
			for _, x := range v {
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(doc)
	require.Positive(t, refs)
}

func TestOpenAPIServed(t *testing.T) {
	t.Parallel()
	e := newAdminEcho(t, nil, slog.New(slog.DiscardHandler))
	rec := serveAdmin(e, http.MethodGet, "/admin/openapi.json", "", "Bearer "+adminTestToken)
	require.Equal(t, http.StatusOK, rec.Code)
	require.Equal(t, "application/json", rec.Header().Get("Content-Type"))
	require.Equal(t, openAPIJSON, rec.Body.Bytes())
	requireErrorBody(t, serveAdmin(e, http.MethodGet, "/admin/openapi.json", "", ""), http.StatusUnauthorized, "missing admin token")
}
