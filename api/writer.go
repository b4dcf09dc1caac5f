package api

import (
	"errors"
	"net"
	"sync"
	"sync/atomic"

	"github.com/hubdev/hub/hub"
	"github.com/hubdev/hub/hub/wire"
)

// writer is one connection's outbound queue, the same for every transport:
// the frames the hub hands over, written in batches by a goroutine that
// runs only while there is something to write, then the connection's last
// frame and its close. How a batch looks on the wire is the transport's
// framing (WebSocket frames, SSE events). The hub's credits bound the
// queue (hub.ConnectParams.Credits): the writer tells the session when
// frames are written, so that it hands over more.
type writer struct {
	framing framing
	writes  writeCounter
	wg      sync.WaitGroup // the goroutine that writes, while it runs
	done    chan struct{}  // closed when nothing more will be written

	mu      sync.Mutex
	sess    *hub.Session // nil until attach
	unacked int          // frames written before attach
	frames  [][]byte     // handed by the session, oldest first
	spare   [][]byte     // the last batch's slice, for the next one
	end     *ending      // set by close
	kicked  bool         // the framing has something of its own to write
	running bool         // a goroutine runs write
	ended   bool         // the end is written, the socket failed, or stop
}

// framing writes a writer's batches the way a transport frames them. The
// writer calls it from one goroutine at a time.
type framing interface {
	// write writes a batch as one unit, with whatever the transport has
	// of its own that is due (a WebSocket's ping or pong, an SSE
	// keep-alive); an empty batch with nothing due writes nothing.
	write(b outBatch) error
	// closed is called once, after the end was written or a write failed.
	closed()
}

// outBatch is what one write carries.
type outBatch struct {
	frames [][]byte
	kicked bool    // the transport asked for a write of its own (kick)
	end    *ending // the last frame and the close, written after frames
}

// ending is how a connection ends: a last frame (an error frame, a close
// message; nil for none), then the close.
type ending struct {
	last  []byte
	close wire.Close
}

// writeCounter counts a transport's socket writes for /metrics.
type writeCounter = *atomic.Uint64

func newWriter(f framing, writes writeCounter) *writer {
	return &writer{framing: f, writes: writes, done: make(chan struct{})}
}

// attach names the session whose frames the writer writes, which it tells
// when they are written (hub.Session.Sent) or jam.
func (w *writer) attach(s *hub.Session) {
	w.mu.Lock()
	w.sess = s
	n := w.unacked
	w.unacked = 0
	w.mu.Unlock()
	if n > 0 {
		s.Sent(n)
	}
}

// send queues frames the session handed over (hub.Conn.Send).
func (w *writer) send(frames [][]byte) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ended || w.end != nil {
		return
	}
	w.frames = append(w.frames, frames...)
	w.start()
}

// close queues the end: last (when not nil) and the close, after the
// frames queued already; nothing more is written. The first close wins.
func (w *writer) close(last []byte, cl wire.Close) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ended || w.end != nil {
		return
	}
	w.end = &ending{last: last, close: cl}
	w.start()
}

// kick asks for a write even when no frame is queued: the framing has
// something of its own that is due.
func (w *writer) kick() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.ended && w.end == nil {
		w.kicked = true
		w.start()
	}
}

// stop drops whatever is still queued; the connection is gone. A write
// under way goes on until it returns (see wait).
func (w *writer) stop() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.finish()
}

// wait returns once no write is under way and none will start: after stop,
// or once done is closed.
func (w *writer) wait() { w.wg.Wait() }

// finish must be called with w.mu held.
func (w *writer) finish() {
	if !w.ended {
		w.ended = true
		close(w.done)
	}
}

// start must be called with w.mu held.
func (w *writer) start() {
	if !w.running {
		w.running = true
		w.wg.Add(1)
		go w.write() // ends when nothing is left to write
	}
}

// write writes what is queued, in batches, until nothing is.
func (w *writer) write() {
	defer w.wg.Done()
	for {
		w.mu.Lock()
		b := outBatch{frames: w.frames, end: w.end, kicked: w.kicked}
		if w.ended || len(b.frames) == 0 && b.end == nil && !b.kicked {
			w.running = false
			w.frames, w.spare = nil, nil // an idle connection holds no slice
			w.mu.Unlock()
			return
		}
		w.frames, w.spare, w.kicked = w.spare, nil, false
		if b.end != nil {
			w.finish()
		}
		w.mu.Unlock()

		if err := w.framing.write(b); err != nil {
			w.fail(err)
			return
		}
		if w.writes != nil {
			w.writes.Add(1)
		}
		w.written(b.frames)
		if b.end != nil {
			w.mu.Lock()
			w.running = false
			w.mu.Unlock()
			w.framing.closed()
			return
		}
	}
}

// written tells the session that frames are written, and keeps their
// slice for the next batch.
func (w *writer) written(frames [][]byte) {
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
func (w *writer) fail(err error) {
	w.mu.Lock()
	w.finish()
	w.running = false
	s := w.sess
	w.mu.Unlock()
	if s != nil && isTimeout(err) {
		s.Jammed()
	}
	w.framing.closed()
}

func isTimeout(err error) bool {
	ne, ok := errors.AsType[net.Error](err)
	return ok && ne.Timeout()
}
