package api

import (
	"bufio"
	"net"
	"net/http"
	"sync"
	"sync/atomic"

	"github.com/olahol/melody"
)

// batchConn is a WebSocket connection's socket. Melody's writer writes
// one message per write(2), and under fan-out those system calls were
// most of the hub's CPU. So while the writer has more messages queued
// behind the one it writes, their bytes are held back here and go out
// together with the last one: one system call, and one TCP segment, for a
// run of frames.
//
// queued counts the messages handed to melody and not yet written: a
// write while it is above one is followed by at least one more write from
// the same writer, which carries the held bytes out (or the connection
// ends, and they do not matter). Control frames written from elsewhere
// (gorilla's pong and close replies) follow the same rule and keep their
// place in the byte stream.
type batchConn struct {
	net.Conn
	owner  melodyConn // set by the connect handler, before melody's writer starts
	queued atomic.Int64

	mu   sync.Mutex // orders the writes of the writer and of gorilla's replies
	held *[]byte    // from batchBuffers; nil while nothing is held back
}

// batchMax bounds the bytes held back: a socket buffer's worth.
const batchMax = socketSendBuffer

// batchBuffers holds the buffers of bytes held back; a connection takes
// one only while it holds bytes, so an idle one holds none.
var batchBuffers = sync.Pool{New: func() any { b := make([]byte, 0, batchMax); return &b }}

// send hands frame to ms's writer.
func (c *batchConn) send(ms *melody.Session, frame []byte) {
	c.queued.Add(1)
	if ms.Write(frame) != nil {
		c.queued.Add(-1)
	}
}

// written is called when ms's writer wrote a message, or dropped one.
func (c *batchConn) written() { c.queued.Add(-1) }

func (c *batchConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	more := c.queued.Load() > 1
	if c.held == nil && !more {
		return c.Conn.Write(p)
	}
	if c.held == nil {
		c.held = batchBuffers.Get().(*[]byte)
	}
	var err error
	switch {
	case len(*c.held)+len(p) > batchMax:
		err = c.flush(p) // a large frame goes out with what is held, in one writev
	case more:
		*c.held = append(*c.held, p...)
	default:
		*c.held = append(*c.held, p...)
		err = c.flush(nil)
	}
	if err != nil {
		// Held bytes that failed to go out fail the connection all the same.
		return 0, err
	}
	return len(p), nil
}

// flush writes the held bytes, then p. Must be called with c.mu held.
func (c *batchConn) flush(p []byte) error {
	var err error
	if len(p) == 0 {
		_, err = c.Conn.Write(*c.held)
	} else {
		bufs := net.Buffers{*c.held, p}
		_, err = bufs.WriteTo(c.Conn)
	}
	c.release()
	return err
}

// Close closes the socket before it waits for c.mu, which a write blocked
// on a jammed socket holds until the close unblocks it.
func (c *batchConn) Close() error {
	err := c.Conn.Close()
	c.mu.Lock()
	if c.held != nil {
		c.release()
	}
	c.mu.Unlock()
	return err
}

// release must be called with c.mu held.
func (c *batchConn) release() {
	*c.held = (*c.held)[:0]
	batchBuffers.Put(c.held)
	c.held = nil
}

// batchHijacker hands gorilla's upgrade a batchConn, on the connection's
// own goroutine while the handler waits for done: the ResponseWriter may
// be used only until the handler returns.
type batchHijacker struct {
	http.ResponseWriter
	conn *batchConn
	done chan struct{}
	once sync.Once
}

func (h *batchHijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	nc, rw, err := http.NewResponseController(h.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err // gorilla answers it through h
	}
	h.conn = &batchConn{Conn: nc}
	h.ResponseWriter = nil // the connection outlives it
	h.handOver()
	return h.conn, rw, nil
}

// handOver lets the handler return; after it, h.ResponseWriter is not
// touched again (gorilla does not use it once it hijacked).
func (h *batchHijacker) handOver() { h.once.Do(func() { close(h.done) }) }

// socketOf returns the batchConn under a melody session that serveMelody
// upgraded.
func socketOf(ms *melody.Session) *batchConn {
	return ms.WebsocketConnection().UnderlyingConn().(*batchConn)
}
