package api

import (
	"bytes"
	"embed"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
)

// dashboardFiles is the live dashboard of GET / (SPEC §8): plain HTML, CSS
// and one JavaScript module, served from the binary. The hub runs on
// closed networks, so the page loads nothing from anywhere else.
//
//go:embed dashboard
var dashboardFiles embed.FS

// dashboardTypes are the content types of the dashboard's files, set here
// rather than taken from the host's mime tables, which may lack or differ
// on them.
var dashboardTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".svg":  "image/svg+xml",
}

// dashboardCSP keeps the page to its own origin: scripts and styles from
// /dashboard/, WebSocket and fetch to the hub itself. Since CSP Level 3,
// 'self' also matches ws: and wss: to the page's own host and port (and
// Chromium follows it: TestDashboardBrowser subscribes under this policy),
// so the page needs no ws: or wss:, which would let it connect anywhere.
const dashboardCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// dashboardRoutes registers the dashboard: the page at / and its assets
// under /dashboard/.
func dashboardRoutes(e *echo.Echo) {
	h := dashboardHandler()
	e.GET("/", h)
	e.GET("/dashboard/*", h)
}

// dashboardHandler serves the dashboard's embedded files: index.html for /
// and /dashboard/, the file named by the path under /dashboard/ otherwise.
// Files are read once, at the call.
func dashboardHandler() echo.HandlerFunc {
	files := loadDashboard()
	// The build's start stands in for the files' modification time, so
	// browsers revalidate after an upgrade.
	modTime := time.Now()
	return func(c echo.Context) error {
		name := strings.TrimPrefix(c.Request().URL.Path, "/dashboard")
		name = strings.TrimPrefix(path.Clean("/"+name), "/")
		if name == "" {
			name = "index.html"
		}
		body, ok := files[name]
		if !ok {
			return echo.NewHTTPError(http.StatusNotFound, "not found")
		}
		hdr := c.Response().Header()
		hdr.Set(echo.HeaderContentType, dashboardTypes[path.Ext(name)])
		hdr.Set("Cache-Control", "no-cache")
		hdr.Set("X-Content-Type-Options", "nosniff")
		hdr.Set("Content-Security-Policy", dashboardCSP)
		hdr.Set("Referrer-Policy", "no-referrer")
		http.ServeContent(c.Response(), c.Request(), name, modTime, bytes.NewReader(body))
		return nil
	}
}

// loadDashboard reads the embedded files whose type is known, by their
// name under dashboard/.
func loadDashboard() map[string][]byte {
	files := map[string][]byte{}
	err := fs.WalkDir(dashboardFiles, "dashboard", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || dashboardTypes[path.Ext(p)] == "" {
			return err
		}
		b, err := dashboardFiles.ReadFile(p)
		files[strings.TrimPrefix(p, "dashboard/")] = b
		return err
	})
	if err != nil { // the files are compiled in: this cannot fail
		panic("dashboard: " + err.Error())
	}
	return files
}
