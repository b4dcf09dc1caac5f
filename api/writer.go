package api

import (
	"encoding/binary"
	"errors"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/hubdev/hub/hub"
)

// wsWriter writes a WebSocket connection's frames in place of melody's
// writer, for what profiles of the hub under load showed (issue 7):
//   - melody writes one message per write(2), and under fan-out those
//     system calls were two thirds of the hub's CPU; the writer takes
//     every frame waiting and writes them with one;
//   - melody's writer goroutine lives as long as the connection, and a
//     goroutine that wrote once keeps a stack of 4 KiB or more; the
//     writer's goroutine runs only while there is something to write, so
//     an idle connection keeps melody's reader and melody's writer, which
//     writes nothing and keeps the smallest stack;
//   - melody pings from a ticker per connection; the writer sends a ping
//     with each of the hub's heartbeats instead.
//
// Melody still upgrades, reads and tracks the sessions; the writer also
// answers the client's pings (pongTo). Gorilla still answers a client's
// close frame from the read goroutine; wsSocket keeps that write and the
// writer's batches apart.
type wsWriter struct {
	sock    *wsSocket
	timeout time.Duration
	writes  *atomic.Uint64 // socket writes, for /metrics

	mu      sync.Mutex
	sess    *hub.Session // nil until attach
	unacked int          // frames written before attach
	frames  [][]byte     // handed by the session, oldest first
	spare   [][]byte     // the last batch's slice, for the next one
	last    []byte       // the frame right before the close frame
	closing []byte       // the close frame's payload, once close was called
	ping    bool         // a ping is due
	pong    []byte       // the payload of the client's last unanswered ping
	running bool         // a goroutine runs write
	ended   bool         // the close frame is out or the socket failed
}

// Server frames are not masked (RFC 6455 §5.1).
const (
	opText  = 0x1
	opClose = 0x8
	opPing  = 0x9
	opPong  = 0xA
)

// pongGrace is how long after a heartbeat's ping its pong may come before
// melody's reader gives up on the connection: a client whose pongs stop is
// dropped within a heartbeat interval and this.
const pongGrace = time.Minute

// frameBuffers holds the writers' buffers; a writer takes one only while
// it writes.
var frameBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 16<<10); return &b }}

// maxPooledFrameBuffer keeps a buffer grown by a large batch out of the
// pool.
const maxPooledFrameBuffer = 256 << 10

func newWSWriter(sock *wsSocket, timeout time.Duration, writes *atomic.Uint64) *wsWriter {
	return &wsWriter{sock: sock, timeout: timeout, writes: writes}
}

// attach names the session whose frames the writer writes, which it tells
// when they are written (hub.Session.Sent) or jam.
func (w *wsWriter) attach(s *hub.Session) {
	w.mu.Lock()
	w.sess = s
	n := w.unacked
	w.unacked = 0
	w.mu.Unlock()
	if n > 0 {
		s.Sent(n)
	}
}

// send queues frames the session handed over.
func (w *wsWriter) send(frames [][]byte) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ended || w.closing != nil {
		return
	}
	w.frames = append(w.frames, frames...)
	w.start()
}

// close queues last (when not nil) and then the close frame; the socket is
// closed after them, and nothing more is written.
func (w *wsWriter) close(last []byte, code int, reason string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ended || w.closing != nil {
		return
	}
	w.last, w.closing = last, websocket.FormatCloseMessage(code, reason)
	w.start()
}

// pingNext puts a ping before the next frames: the hub's heartbeats carry
// them, so no connection needs a timer of its own.
func (w *wsWriter) pingNext() {
	w.mu.Lock()
	w.ping = true
	w.mu.Unlock()
}

// pongTo answers a client's ping (RFC 6455 §5.5.3: the last one is enough).
// It replaces gorilla's handler, which writes the pong from the read
// goroutine and would grow that long-lived goroutine's stack for good.
func (w *wsWriter) pongTo(payload string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.ended && w.closing == nil {
		w.pong = []byte(payload)
		w.start()
	}
	return nil
}

// stop drops whatever is still queued; the connection is gone.
func (w *wsWriter) stop() {
	w.mu.Lock()
	w.ended = true
	w.mu.Unlock()
}

// start must be called with w.mu held.
func (w *wsWriter) start() {
	if !w.running {
		w.running = true
		go w.write() // ends when nothing is left to write
	}
}

// write writes what is queued, in batches, until nothing is.
func (w *wsWriter) write() {
	buf := frameBuffers.Get().(*[]byte)
	defer func() {
		if cap(*buf) <= maxPooledFrameBuffer {
			*buf = (*buf)[:0]
			frameBuffers.Put(buf)
		}
	}()
	for {
		w.mu.Lock()
		frames, last, closing, ping, pong := w.frames, w.last, w.closing, w.ping, w.pong
		if w.ended || len(frames) == 0 && closing == nil && !ping && pong == nil {
			w.running = false
			w.frames, w.spare = nil, nil // an idle connection holds no slice
			w.mu.Unlock()
			return
		}
		w.frames, w.spare, w.last, w.ping, w.pong = w.spare, nil, nil, false, nil
		if closing != nil {
			w.ended = true
		}
		w.mu.Unlock()

		b := batch{buf: (*buf)[:0]}
		if pong != nil {
			b.add(opPong, pong)
		}
		if ping {
			b.add(opPing, nil)
		}
		for _, f := range frames {
			b.add(opText, f)
		}
		if closing != nil {
			if last != nil {
				b.add(opText, last)
			}
			b.add(opClose, closing)
		}
		*buf = b.buf
		_ = w.sock.SetWriteDeadline(time.Now().Add(w.timeout))
		if err := w.sock.writeBatch(b.segments()); err != nil {
			w.fail(err)
			return
		}
		w.writes.Add(1)
		w.written(frames)
		if closing != nil {
			w.mu.Lock()
			w.running = false
			w.mu.Unlock()
			_ = w.sock.Close() // as melody does after its close frame
			return
		}
	}
}

// written tells the session that frames are written, and keeps their
// slice for the next batch.
func (w *wsWriter) written(frames [][]byte) {
	n := len(frames)
	clear(frames)
	w.mu.Lock()
	w.spare = frames[:0]
	s := w.sess
	if s == nil {
		w.unacked += n
	}
	w.mu.Unlock()
	if s != nil && n > 0 {
		s.Sent(n)
	}
}

// fail ends the connection after a failed write. A write that blocked past
// the write timeout is a jammed socket: a slow consumer (SPEC §6).
func (w *wsWriter) fail(err error) {
	w.mu.Lock()
	w.ended, w.running = true, false
	s := w.sess
	w.mu.Unlock()
	if s != nil && errors.Is(err, os.ErrDeadlineExceeded) {
		s.Jammed()
	}
	_ = w.sock.Close() // melody's reader ends, and the connection with it
}

// batch is one write's frames. Small frames are copied into buf; a large
// payload is written from where it is, since the hub encodes an event
// once for all its sessions, and a large row sent to many connections
// must not be copied once per connection.
type batch struct {
	buf  []byte
	segs net.Buffers
	mark int // buf[:mark] is in segs already
}

// largeFrame is the payload size from which a frame is not copied.
const largeFrame = 4 << 10

func (b *batch) add(op byte, payload []byte) {
	if len(payload) < largeFrame {
		b.buf = appendFrame(b.buf, op, payload)
		return
	}
	b.buf = appendHeader(b.buf, op, len(payload))
	b.segs = append(b.segs, b.buf[b.mark:], payload)
	b.mark = len(b.buf)
}

// segments returns the batch's bytes in order.
func (b *batch) segments() net.Buffers {
	if b.mark < len(b.buf) {
		b.segs = append(b.segs, b.buf[b.mark:])
	}
	return b.segs
}

// appendFrame appends a final, unmasked frame (RFC 6455 §5.2).
func appendFrame(b []byte, op byte, payload []byte) []byte {
	return append(appendHeader(b, op, len(payload)), payload...)
}

func appendHeader(b []byte, op byte, n int) []byte {
	b = append(b, 0x80|op)
	switch {
	case n < 126:
		b = append(b, byte(n))
	case n <= 0xFFFF:
		b = append(b, 126)
		b = binary.BigEndian.AppendUint16(b, uint16(n))
	default:
		b = append(b, 127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	return b
}
