package api

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hubdev/hub/hub/wire"
)

// frame is one frame as a client reads it.
type frame struct {
	op      byte
	payload []byte
}

// readFrame reads one server frame (final, unmasked) as RFC 6455 §5.2
// lays it out.
func readFrame(r *bufio.Reader) (frame, error) {
	var h [2]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return frame{}, err
	}
	if h[0]&0x80 == 0 || h[1]&0x80 != 0 {
		return frame{}, errors.New("not a final unmasked frame")
	}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var l [2]byte
		if _, err := io.ReadFull(r, l[:]); err != nil {
			return frame{}, err
		}
		n = uint64(binary.BigEndian.Uint16(l[:]))
	case 127:
		var l [8]byte
		if _, err := io.ReadFull(r, l[:]); err != nil {
			return frame{}, err
		}
		n = binary.BigEndian.Uint64(l[:])
	}
	p := make([]byte, n)
	_, err := io.ReadFull(r, p)
	return frame{op: h[0] & 0x0f, payload: p}, err
}

func TestAppendFrameLengths(t *testing.T) {
	for _, n := range []int{0, 1, 125, 126, 127, 0xFFFF, 0x10000, 1 << 20} {
		p := bytes.Repeat([]byte{'x'}, n)
		b := appendFrame(nil, opText, p)
		f, err := readFrame(bufio.NewReader(bytes.NewReader(b)))
		if err != nil || f.op != opText || !bytes.Equal(f.payload, p) {
			t.Fatalf("%d bytes: read op %d, %d bytes, %v", n, f.op, len(f.payload), err)
		}
	}
}

// recordingConn is a socket that records its writes; a zero-value one
// accepts them.
type recordingConn struct {
	net.Conn
	writes chan []byte
	err    error
	closed chan struct{}
}

func newRecordingConn() *recordingConn {
	return &recordingConn{writes: make(chan []byte, 100), closed: make(chan struct{})}
}

func (c *recordingConn) Write(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	c.writes <- bytes.Clone(p)
	return len(p), nil
}

func (c *recordingConn) SetWriteDeadline(time.Time) error { return nil }

func (c *recordingConn) Close() error {
	select {
	case <-c.closed:
	default:
		close(c.closed)
	}
	return nil
}

func framesOf(t *testing.T, b []byte) []frame {
	t.Helper()
	r := bufio.NewReader(bytes.NewReader(b))
	var fs []frame
	for {
		f, err := readFrame(r)
		if err == io.EOF {
			return fs
		}
		if err != nil {
			t.Fatal(err)
		}
		fs = append(fs, f)
	}
}

func TestWSWriterBatchesAndCloses(t *testing.T) {
	conn := newRecordingConn()
	w, _ := newWSWriter(&wsSocket{Conn: conn}, time.Second, new(atomic.Uint64))
	defer w.stop()
	// Frames queued before the writer's goroutine runs go out in one write.
	w.mu.Lock()
	w.frames = [][]byte{[]byte("1"), []byte("2"), []byte("3")}
	w.start()
	w.mu.Unlock()
	got := framesOf(t, <-conn.writes)
	if len(got) != 3 || string(got[0].payload) != "1" || string(got[2].payload) != "3" {
		t.Fatalf("first write has %d frames, want 1, 2, 3", len(got))
	}
	w.close([]byte("error"), wire.Refusal("bye"))
	got = framesOf(t, <-conn.writes)
	if len(got) != 2 || got[0].op != opText || string(got[0].payload) != "error" || got[1].op != opClose {
		t.Fatalf("close wrote %+v, want the error frame, then the close frame", got)
	}
	if code := binary.BigEndian.Uint16(got[1].payload); code != 1008 || string(got[1].payload[2:]) != "bye" {
		t.Fatalf("close frame %d %q", code, got[1].payload[2:])
	}
	<-conn.closed
	w.send([][]byte{[]byte("late")})
	w.close(nil, wire.Close{Code: 1000})
	w.mu.Lock()
	queued, running := len(w.frames), w.running
	w.mu.Unlock()
	if queued != 0 || running || len(conn.writes) != 0 {
		t.Fatalf("after the close frame: %d queued, writer running %v, %d more writes", queued, running, len(conn.writes))
	}
}

func TestWSWriterFailureClosesSocket(t *testing.T) {
	conn := newRecordingConn()
	conn.err = os.ErrDeadlineExceeded
	w, _ := newWSWriter(&wsSocket{Conn: conn}, time.Second, new(atomic.Uint64))
	defer w.stop()
	w.send([][]byte{[]byte("x")})
	<-conn.closed
	w.mu.Lock()
	ended := w.ended
	w.mu.Unlock()
	if !ended {
		t.Fatal("writer goes on after a failed write")
	}
}

func TestWSWriterPingsBeforeNextFrames(t *testing.T) {
	conn := newRecordingConn()
	w, f := newWSWriter(&wsSocket{Conn: conn}, time.Second, new(atomic.Uint64))
	defer w.stop()
	f.pingNext()
	w.send([][]byte{[]byte("heartbeat")})
	got := framesOf(t, <-conn.writes)
	if len(got) != 2 || got[0].op != opPing || string(got[1].payload) != "heartbeat" {
		t.Fatalf("wrote %+v, want a ping, then the heartbeat", got)
	}
}

func TestOnShortStackRunsAndPropagatesPanics(t *testing.T) {
	ran := false
	onShortStack(func() { ran = true })
	if !ran {
		t.Fatal("f did not run")
	}
	defer func() {
		if p := recover(); p != "boom" {
			t.Fatalf("recovered %v, want the panic of f", p)
		}
	}()
	onShortStack(func() { panic("boom") })
	t.Fatal("onShortStack returned after f panicked")
}

func TestWSWriterAnswersPings(t *testing.T) {
	conn := newRecordingConn()
	w, f := newWSWriter(&wsSocket{Conn: conn}, time.Second, new(atomic.Uint64))
	defer w.stop()
	if err := f.pongTo("x"); err != nil {
		t.Fatal(err)
	}
	got := framesOf(t, <-conn.writes)
	if len(got) != 1 || got[0].op != opPong || string(got[0].payload) != "x" {
		t.Fatalf("wrote %+v, want a pong with the ping's payload", got)
	}
}

func TestBatchWritesLargePayloadsInPlace(t *testing.T) {
	large := bytes.Repeat([]byte{'x'}, largeFrame)
	b := batch{}
	b.add(opText, []byte("small"))
	b.add(opText, large)
	b.add(opText, []byte("after"))
	segs := b.segments()
	if len(segs) != 3 || &segs[1][0] != &large[0] {
		t.Fatalf("%d segments; want the large payload as the second, not copied", len(segs))
	}
	var stream []byte
	for _, s := range segs {
		stream = append(stream, s...)
	}
	got := framesOf(t, stream)
	if len(got) != 3 || string(got[0].payload) != "small" || !bytes.Equal(got[1].payload, large) || string(got[2].payload) != "after" {
		t.Fatalf("frames %d, want small, large, after", len(got))
	}
}

// recordingFraming records the batches a writer hands it; each write
// says it began on entered, then waits until block is closed.
type recordingFraming struct {
	batches chan outBatch
	entered chan struct{}
	block   chan struct{}
	closes  atomic.Int32
}

func (f *recordingFraming) write(b outBatch) error {
	f.entered <- struct{}{}
	<-f.block
	b.frames = slices.Clone(b.frames) // the writer reuses the slice
	f.batches <- b
	return nil
}

func (f *recordingFraming) closed() { f.closes.Add(1) }

// TestWriterKnowsNoTransport: the engine batches what is queued while a
// write is under way, passes kicks and the end to the framing, stops after
// the end, and wait returns only once no write is under way.
func TestWriterKnowsNoTransport(t *testing.T) {
	f := &recordingFraming{batches: make(chan outBatch, 10), entered: make(chan struct{}, 10), block: make(chan struct{})}
	w := newWriter(f, nil)
	w.send([][]byte{[]byte("1")})
	<-f.entered
	w.send([][]byte{[]byte("2"), []byte("3")}) // queued behind the blocked write
	w.kick()
	w.close([]byte("last"), wire.CloseShutdown)
	w.send([][]byte{[]byte("late")}) // after the close: dropped
	close(f.block)
	first, second := <-f.batches, <-f.batches
	if len(first.frames) != 1 || first.end != nil {
		t.Fatalf("first batch %+v, want frame 1 alone", first)
	}
	if len(second.frames) != 2 || string(second.frames[1]) != "3" || !second.kicked ||
		second.end == nil || string(second.end.last) != "last" || second.end.close != wire.CloseShutdown {
		t.Fatalf("second batch %+v, want 2 and 3, kicked, then the end", second)
	}
	<-w.done
	w.wait()
	if n := f.closes.Load(); n != 1 || len(f.batches) != 0 {
		t.Fatalf("closed %d times, %d more batches; want once, none", n, len(f.batches))
	}
}
