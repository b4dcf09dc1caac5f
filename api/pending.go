package api

import (
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/labstack/echo/v4"

	"github.com/hubdev/hub/hub/wire"
)

// pending counts the connections that have not authenticated yet: on the
// node, and per remote address (issue 12). A peer without a key can hold
// such a connection until it is refused or the auth timeout, so their
// number is capped; an authenticated connection counts toward its key's
// limit instead (SPEC §3). A protocol A connection is pending from its
// upgrade until a subscribe or its header key succeeds; protocol B and
// SSE authenticate at the request, so theirs is pending while the request
// is checked (an SSE POST body read included).
type pending struct {
	max, maxPerAddr int

	mu     sync.Mutex // guards n, byAddr
	n      int
	byAddr map[string]int
}

// newPending caps the pending connections at max on the node and
// maxPerAddr per remote address.
func newPending(max, maxPerAddr int) *pending {
	return &pending{max: max, maxPerAddr: maxPerAddr, byAddr: map[string]int{}}
}

// pendingSlot is one connection's place among the pending.
type pendingSlot struct {
	p        *pending
	addr     string
	released atomic.Bool
}

// take gives a connection from remoteAddr (an http.Request's RemoteAddr,
// the TCP peer) a slot; false when either cap is reached. The address is
// the peer's, as addrKey groups it: X-Forwarded-For is not trusted, since
// any client can set it.
func (p *pending) take(remoteAddr string) (*pendingSlot, bool) {
	addr := addrKey(remoteAddr)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.n >= p.max || p.byAddr[addr] >= p.maxPerAddr {
		return nil, false
	}
	p.n++
	p.byAddr[addr]++
	return &pendingSlot{p: p, addr: addr}, true
}

// release gives the slot back; calls after the first, and calls on a nil
// slot, do nothing, so that each path that ends the pending state may
// call it.
func (s *pendingSlot) release() {
	if s == nil || s.released.Swap(true) {
		return
	}
	p := s.p
	p.mu.Lock()
	defer p.mu.Unlock()
	p.n--
	if p.byAddr[s.addr]--; p.byAddr[s.addr] == 0 {
		delete(p.byAddr, s.addr)
	}
}

// count returns the pending connections, for tests and metrics.
func (p *pending) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.n
}

// addrKey is the address a RemoteAddr "host:port" counts under: an IPv4
// address, also one mapped into IPv6 (::ffff:1.2.3.4 is 1.2.3.4), or an
// IPv6 address's /64. A single IPv6 subscriber is routinely given a whole
// /64, so keyed by address one peer could take every pending place.
// RemoteAddr as it is when it holds no IP.
func addrKey(remoteAddr string) string {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		host = remoteAddr
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return remoteAddr
	}
	ip = ip.Unmap().WithZone("")
	if ip.Is4() {
		return ip.String()
	}
	return netip.PrefixFrom(ip, 64).Masked().String()
}

// pendingRetryAfter is the Retry-After, in seconds, of a connection
// refused because too many are pending: they authenticate or time out
// within HUB_AUTH_TIMEOUT, most within a round trip.
const pendingRetryAfter = 1

// tooManyPending refuses a WebSocket upgrade with 503 before it upgrades:
// that costs the node nothing more than the request it has read.
func tooManyPending(c echo.Context) error {
	c.Response().Header().Set("Retry-After", strconv.Itoa(pendingRetryAfter))
	return echo.NewHTTPError(http.StatusServiceUnavailable, wire.MsgTooManyPending)
}
