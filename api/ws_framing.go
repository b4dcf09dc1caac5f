package api

import (
	"encoding/binary"
	"net"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/hubdev/hub/hub/wire"
)

// wsFraming writes a writer's batches as WebSocket frames on a socket that
// serveMelody hijacked, in place of melody's writer, for what profiles of
// the hub under load showed (issue 7):
//   - melody writes one message per write(2), and under fan-out those
//     system calls were two thirds of the hub's CPU; a batch goes out
//     with one;
//   - melody's writer goroutine lives as long as the connection, and a
//     goroutine that wrote once keeps a stack of 4 KiB or more; the
//     writer's goroutine runs only while there is something to write, so
//     an idle connection keeps melody's reader and melody's writer, which
//     writes nothing and keeps the smallest stack;
//   - melody pings from a ticker per connection; the framing sends a ping
//     with each of the hub's heartbeats instead.
//
// Melody still upgrades, reads and tracks the sessions; the framing also
// answers the client's pings (pongTo). Gorilla still answers a client's
// close frame from the read goroutine; wsSocket keeps that write and the
// batches apart.
type wsFraming struct {
	sock    *wsSocket
	timeout time.Duration
	w       *writer // the writer whose batches these are, for pongTo

	mu   sync.Mutex // guards ping and pong
	ping bool       // a ping is due
	pong []byte     // the payload of the client's last unanswered ping
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

// frameBuffers holds the framings' buffers; a batch takes one only while
// it is written.
var frameBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 16<<10); return &b }}

// maxPooledFrameBuffer keeps a buffer grown by a large batch out of the
// pool.
const maxPooledFrameBuffer = 256 << 10

// newWSWriter returns the writer of a WebSocket connection on sock.
func newWSWriter(sock *wsSocket, timeout time.Duration, writes writeCounter) (*writer, *wsFraming) {
	f := &wsFraming{sock: sock, timeout: timeout}
	f.w = newWriter(f, writes)
	return f.w, f
}

// pingNext puts a ping before the next frames: the hub's heartbeats carry
// them, so no connection needs a timer of its own.
func (f *wsFraming) pingNext() {
	f.mu.Lock()
	f.ping = true
	f.mu.Unlock()
}

// pongTo answers a client's ping (RFC 6455 §5.5.3: the last one is enough).
// It replaces gorilla's handler, which writes the pong from the read
// goroutine and would grow that long-lived goroutine's stack for good.
func (f *wsFraming) pongTo(payload string) error {
	f.mu.Lock()
	f.pong = []byte(payload)
	f.mu.Unlock()
	f.w.kick()
	return nil
}

// write implements framing: the due pong and ping, the frames, then the
// last frame and the close frame; one system call for all of them.
func (f *wsFraming) write(b outBatch) error {
	f.mu.Lock()
	ping, pong := f.ping, f.pong
	f.ping, f.pong = false, nil
	f.mu.Unlock()
	if len(b.frames) == 0 && b.end == nil && !ping && pong == nil {
		return nil
	}
	buf := frameBuffers.Get().(*[]byte)
	defer func() {
		if cap(*buf) <= maxPooledFrameBuffer {
			*buf = (*buf)[:0]
			frameBuffers.Put(buf)
		}
	}()
	out := batch{buf: (*buf)[:0]}
	if pong != nil {
		out.add(opPong, pong)
	}
	if ping {
		out.add(opPing, nil)
	}
	for _, fr := range b.frames {
		out.add(opText, fr)
	}
	if b.end != nil {
		if b.end.last != nil {
			out.add(opText, b.end.last)
		}
		out.add(opClose, websocket.FormatCloseMessage(b.end.close.Code, wire.CloseReason(b.end.close.Reason)))
	}
	*buf = out.buf
	_ = f.sock.SetWriteDeadline(time.Now().Add(f.timeout))
	return f.sock.writeBatch(out.segments())
}

// closed implements framing: the close frame is out, or the socket failed;
// melody's reader ends, and the connection with it, as melody does after
// its close frame.
func (f *wsFraming) closed() { _ = f.sock.Close() }

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
