package api

import (
	"bufio"
	"net"
	"net/http"
	"sync"

	"github.com/olahol/melody"
)

// wsSocket is a WebSocket connection's socket as serveMelody hijacked it,
// carrying the connection's state for melody's handlers (cheaper than
// melody's per-session key map).
type wsSocket struct {
	net.Conn
	owner   melodyConn   // set by the connect handler, before any other handler runs
	pending *pendingSlot // the upgrade's, for the connect handler
	mu      sync.Mutex   // keeps each write whole (see writeBatch)
}

// Write is gorilla's, for its reply to a client's close frame.
func (s *wsSocket) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.Conn.Write(p)
}

// writeBatch writes segs as one unit: one writev on a TCP socket, and no
// frame of gorilla's in between on any socket. Close does not wait for
// it, so that closing unblocks a jammed write.
func (s *wsSocket) writeBatch(segs net.Buffers) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(segs) == 1 {
		_, err := s.Conn.Write(segs[0])
		return err
	}
	_, err := segs.WriteTo(s.Conn)
	return err
}

// socketOf returns the wsSocket under a melody session that serveMelody
// upgraded.
func socketOf(ms *melody.Session) *wsSocket {
	return ms.WebsocketConnection().UnderlyingConn().(*wsSocket)
}

// wsHijacker hands gorilla's upgrade a wsSocket, on the connection's own
// goroutine while the handler waits for done: the ResponseWriter may be
// used only until the handler returns.
type wsHijacker struct {
	http.ResponseWriter
	conn    *wsSocket
	pending *pendingSlot
	done    chan struct{}
	once    sync.Once
}

func (h *wsHijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	nc, rw, err := http.NewResponseController(h.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err // gorilla answers it through h
	}
	h.conn = &wsSocket{Conn: nc, pending: h.pending}
	h.ResponseWriter = nil // the connection outlives it
	h.handOver()
	return h.conn, rw, nil
}

// handOver lets the handler return; after it, h.ResponseWriter is not
// touched again (gorilla does not use it once it hijacked).
func (h *wsHijacker) handOver() { h.once.Do(func() { close(h.done) }) }
