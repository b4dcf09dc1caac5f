package api

import (
	"bytes"
	"errors"
	"net"
	"strings"
	"testing"
)

// writeLog is a socket that records each write it is given.
type writeLog struct {
	net.Conn
	writes [][]byte
	err    error
}

func (w *writeLog) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	w.writes = append(w.writes, bytes.Clone(p))
	return len(p), nil
}

func (w *writeLog) Close() error { return nil }

func (w *writeLog) stream() string {
	var b strings.Builder
	for _, p := range w.writes {
		b.Write(p)
	}
	return b.String()
}

func TestBatchConnWritesThroughWhenNothingQueued(t *testing.T) {
	log := &writeLog{}
	c := &batchConn{Conn: log}
	for _, s := range []string{"a", "b"} {
		if n, err := c.Write([]byte(s)); n != 1 || err != nil {
			t.Fatalf("Write(%q) = %d, %v", s, n, err)
		}
	}
	c.queued.Store(1) // the message being written is the only one
	_, _ = c.Write([]byte("c"))
	if len(log.writes) != 3 || log.stream() != "abc" {
		t.Fatalf("writes %q, want three in order", log.writes)
	}
}

func TestBatchConnHoldsWhileMoreAreQueued(t *testing.T) {
	log := &writeLog{}
	c := &batchConn{Conn: log}
	c.queued.Store(3)
	for _, s := range []string{"1", "pong", "2"} { // gorilla's pong from the read goroutine keeps its place
		if n, err := c.Write([]byte(s)); n != len(s) || err != nil {
			t.Fatalf("Write(%q) = %d, %v", s, n, err)
		}
		if s != "pong" {
			c.written()
		}
	}
	if len(log.writes) != 0 {
		t.Fatalf("written while more were queued: %q", log.writes)
	}
	if n, err := c.Write([]byte("3")); n != 1 || err != nil {
		t.Fatalf("last Write = %d, %v", n, err)
	}
	if len(log.writes) != 1 || log.stream() != "1pong23" {
		t.Fatalf("writes %q, want one write of 1pong23", log.writes)
	}
	if c.held != nil {
		t.Fatal("a buffer is still held after the flush")
	}
}

func TestBatchConnLargeFrameFlushes(t *testing.T) {
	log := &writeLog{}
	c := &batchConn{Conn: log}
	c.queued.Store(2)
	_, _ = c.Write([]byte("head"))
	big := bytes.Repeat([]byte{'x'}, batchMax)
	if n, err := c.Write(big); n != len(big) || err != nil {
		t.Fatalf("Write(big) = %d, %v", n, err)
	}
	if got := log.stream(); got != "head"+string(big) {
		t.Fatalf("stream has %d bytes, want the held bytes then the large frame", len(got))
	}
	if c.held != nil {
		t.Fatal("a buffer is still held after the flush")
	}
}

func TestBatchConnFlushError(t *testing.T) {
	broken := errors.New("broken pipe")
	log := &writeLog{}
	c := &batchConn{Conn: log}
	c.queued.Store(2)
	_, _ = c.Write([]byte("held"))
	c.written()
	log.err = broken
	if n, err := c.Write([]byte("last")); n != 0 || !errors.Is(err, broken) {
		t.Fatalf("Write = %d, %v; want 0 and the socket's error", n, err)
	}
}

func TestBatchConnCloseDropsHeld(t *testing.T) {
	c := &batchConn{Conn: &writeLog{}}
	c.queued.Store(2)
	_, _ = c.Write([]byte("held"))
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if c.held != nil {
		t.Fatal("Close kept the held buffer")
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
