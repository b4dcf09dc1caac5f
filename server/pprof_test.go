package main

import (
	"net"
	"net/http"
	"regexp"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hubdev/hub/store/storetest"
)

// HUB_PPROF_ADDR serves Go's profiles on a listener of its own.
func TestServePprof(t *testing.T) {
	t.Parallel()
	h := startInProc(t, storetest.NewDB(t), map[string]string{"HUB_PPROF_ADDR": "127.0.0.1:0"})
	h.waitLog(t, "pprof listening", 10*time.Second)
	h.stderr.mu.Lock()
	m := regexp.MustCompile(`pprof listening.*addr=(\S+)`).FindStringSubmatch(h.stderr.buf.String())
	h.stderr.mu.Unlock()
	require.NotNil(t, m)
	_, _, err := net.SplitHostPort(m[1])
	require.NoError(t, err)
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://" + m[1] + "/debug/pprof/goroutine?debug=1")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
}
