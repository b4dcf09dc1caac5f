package api

import (
	_ "embed"
	"net/http"

	"github.com/labstack/echo/v4"
)

// openAPIJSON is the OpenAPI 3 document of the admin API and of /healthz
// and /readyz; TestOpenAPIMatchesRoutes keeps it in step with the routes.
//
//go:embed openapi.json
var openAPIJSON []byte

// openAPIDocument answers GET /admin/openapi.json. It sits behind the
// admin token like every /admin route: the document reveals nothing
// secret, but one rule for the whole prefix is simpler to operate (a
// proxy can guard /admin as a whole) than an exception.
func openAPIDocument(c echo.Context) error {
	return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, openAPIJSON)
}
