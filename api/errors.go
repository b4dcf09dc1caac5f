package api

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/labstack/echo/v4"
)

// errorHandler answers every error as {"error":"…"} (SPEC §8). Errors that
// are not echo.HTTPErrors are internal: the caller gets a generic message
// and the details go to the log.
func errorHandler(log *slog.Logger) echo.HTTPErrorHandler {
	return func(err error, c echo.Context) {
		if c.Response().Committed {
			return
		}
		status, msg := http.StatusInternalServerError, "internal error"
		var he *echo.HTTPError
		if errors.As(err, &he) {
			status = he.Code
			msg = http.StatusText(he.Code)
			if he.Message != nil {
				msg = fmt.Sprint(he.Message)
			}
		} else {
			log.Error("request failed", "method", c.Request().Method, "path", c.Path(), "err", err)
		}
		var werr error
		if c.Request().Method == http.MethodHead {
			werr = c.NoContent(status)
		} else {
			werr = c.JSON(status, map[string]string{"error": msg})
		}
		if werr != nil {
			log.Debug("writing error response", "err", werr)
		}
	}
}
