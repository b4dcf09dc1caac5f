package api

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"
)

// requireToken lets a request through only with the header
// "Authorization: Bearer <token>" (SPEC §8); anything else is 401. Both
// sides are hashed before the constant-time comparison, so its timing
// tells neither the token's content nor its length. An empty token lets
// nobody in.
func requireToken(token string) echo.MiddlewareFunc {
	want := sha256.Sum256([]byte(token))
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			got, ok := bearerToken(c.Request().Header.Get(echo.HeaderAuthorization))
			if !ok {
				return unauthorized(c, "missing admin token")
			}
			sum := sha256.Sum256([]byte(got))
			if subtle.ConstantTimeCompare(sum[:], want[:]) != 1 || token == "" {
				return unauthorized(c, "invalid admin token")
			}
			return next(c)
		}
	}
}

// bearerToken returns the credentials of a Bearer authorization header;
// the scheme is case-insensitive (RFC 9110 §11.1).
func bearerToken(header string) (string, bool) {
	scheme, token, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}

func unauthorized(c echo.Context, msg string) error {
	c.Response().Header().Set(echo.HeaderWWWAuthenticate, `Bearer realm="hub admin"`)
	return echo.NewHTTPError(http.StatusUnauthorized, msg)
}
