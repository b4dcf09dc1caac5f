// Package apitest holds what the api package's tests share, internal
// (package api) and external (package api_test) alike.
package apitest

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/stretchr/testify/require"
)

// RequireClosed reads c until its close frame, which must come within and
// carry code and reason; every frame before it must hold heartbeat (the
// protocol's heartbeats may come first).
func RequireClosed(t testing.TB, c *websocket.Conn, within time.Duration, heartbeat string, code int, reason string) {
	t.Helper()
	require.NoError(t, c.SetReadDeadline(time.Now().Add(within)))
	for {
		_, data, err := c.ReadMessage()
		if err == nil {
			require.True(t, bytes.Contains(data, []byte(heartbeat)), "a frame before the close: %s", data)
			continue
		}
		var ce *websocket.CloseError
		require.True(t, errors.As(err, &ce), "%v", err)
		require.Equal(t, code, ce.Code)
		require.Equal(t, reason, ce.Text)
		return
	}
}
