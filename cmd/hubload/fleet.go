package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"golang.org/x/sync/errgroup"
)

// fleetParams describe the clients of one run.
type fleetParams struct {
	Server  server   // subscribes each client
	Clients int      // how many
	Tenants []string // each client's tenant; nil on a global channel
	Decode  decodeFunc
	// Start is when the run began: publications stamped before it (the
	// setup's INSERTs, a previous run's stragglers) are not the run's and
	// are only counted as early.
	Start       time.Time
	SourceAddrs int
	Concurrency int
	Log         io.Writer
}

// fleet is the run's WebSocket clients; each has one reading goroutine.
type fleet struct {
	p         fleetParams
	hist      histogram
	wg        sync.WaitGroup
	closing   atomic.Bool
	stopAfter func() bool // unregisters the close on ctx's end

	mu      sync.Mutex // guards clients, closeErr
	clients []*wsClient
	// closeErr counts the connections the server ended, by reason.
	closeErr map[string]int
	failed   int // dials or subscribes that failed
	firstErr error
}

// wsClient is one connection; its counters are written by its reading
// goroutine and read by the run's.
type wsClient struct {
	idx         int
	tenant      string // "" on a global channel
	conn        *websocket.Conn
	received    atomic.Uint64 // the run's publications
	early       atomic.Uint64 // publications stamped before the run
	foreign     atomic.Uint64 // publications of another tenant
	disorder    atomic.Uint64 // a row's counter not above its previous one: duplicates or out of order
	posDisorder atomic.Uint64 // the hub's positions not after the previous one
	noStamp     atomic.Uint64
	undecodable atomic.Uint64 // messages that did not decode, in whole or in part

	// Reading goroutine only.
	lastPos position
	lastSeq map[int64]int64 // by row
}

// dialFleet opens and subscribes every client; those that fail are
// counted. It returns an error only when none connected or ctx ended.
func dialFleet(ctx context.Context, p fleetParams) (*fleet, error) {
	f := &fleet{p: p, closeErr: map[string]int{}}
	dialers := make([]*websocket.Dialer, p.SourceAddrs)
	for i := range dialers {
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(2+i))}, Timeout: 30 * time.Second}
		dialers[i] = &websocket.Dialer{NetDialContext: d.DialContext, HandshakeTimeout: 30 * time.Second,
			ReadBufferSize: 4096, WriteBufferSize: 512}
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(p.Concurrency)
	for i := range p.Clients {
		g.Go(func() error {
			f.dialOne(gctx, dialers[i%len(dialers)], i)
			return nil
		})
	}
	_ = g.Wait()
	if err := ctx.Err(); err != nil {
		f.close()
		return nil, err
	}
	f.stopAfter = context.AfterFunc(ctx, f.close) // Ctrl-C ends every reading goroutine
	if len(f.clients) == 0 {
		return nil, fmt.Errorf("no client connected: %w", f.firstErr)
	}
	return f, nil
}

// websocketURL is the WebSocket endpoint path of the server at httpURL.
// dialAndHandshake opens a WebSocket connection to path on the server at
// base and runs handshake on it within 30 s; Ctrl-C ends the wait.
func dialAndHandshake(ctx context.Context, d *websocket.Dialer, base, path string, handshake func(*websocket.Conn) error) (*websocket.Conn, error) {
	wsURL, err := websocketURL(base, path)
	if err != nil {
		return nil, err
	}
	conn, resp, err := d.DialContext(ctx, wsURL, nil)
	if err != nil {
		return nil, fmt.Errorf("dial: %w", err)
	}
	resp.Body.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	_ = conn.SetWriteDeadline(time.Now().Add(30 * time.Second))
	_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	if err := handshake(conn); err != nil {
		conn.Close()
		return nil, err
	}
	_ = conn.SetReadDeadline(time.Time{})
	return conn, nil
}

func websocketURL(httpURL, path string) (string, error) {
	u, err := url.Parse(httpURL)
	if err != nil {
		return "", fmt.Errorf("-url: %w", err)
	}
	u.Scheme = map[string]string{"http": "ws", "https": "wss"}[u.Scheme]
	if u.Scheme == "" {
		return "", fmt.Errorf("-url: %q is not http(s)", httpURL)
	}
	u.Path = path
	return u.String(), nil
}

func (f *fleet) dialOne(ctx context.Context, d *websocket.Dialer, i int) {
	c := &wsClient{idx: i}
	if f.p.Tenants != nil {
		c.tenant = f.p.Tenants[i]
	}
	conn, err := f.p.Server.subscribe(ctx, d, i)
	f.mu.Lock()
	defer f.mu.Unlock()
	if err != nil {
		f.failed++
		if f.firstErr == nil {
			f.firstErr = err
			fmt.Fprintf(f.p.Log, "client %d: %v\n", i, err)
		}
		return
	}
	if f.closing.Load() {
		conn.Close()
		return
	}
	c.conn = conn
	f.clients = append(f.clients, c)
	f.wg.Add(1)
	go f.read(c) // ends when the connection closes: close closes it
}

// read counts and times c's publications until the connection ends.
func (f *fleet) read(c *wsClient) {
	defer f.wg.Done()
	buf := make([]byte, 0, 1024)
	for {
		_, r, err := c.conn.NextReader()
		if err != nil {
			f.ended(err)
			return
		}
		buf = buf[:0]
		for {
			if len(buf) == cap(buf) {
				buf = append(buf, 0)[:len(buf)]
			}
			n, err := r.Read(buf[len(buf):cap(buf)])
			buf = buf[:len(buf)+n]
			if err == io.EOF {
				break
			}
			if err != nil {
				f.ended(err)
				return
			}
		}
		if err := f.message(c, buf, time.Now()); err != nil {
			f.ended(err)
			return
		}
	}
}

// message takes one message received at now; an error (of the reply)
// ends the connection.
func (f *fleet) message(c *wsClient, msg []byte, now time.Time) error {
	reply, err := f.p.Decode(msg, func(d delivery) { f.deliver(c, d, now) })
	if err != nil {
		c.undecodable.Add(1)
	}
	if reply == nil {
		return nil
	}
	_ = c.conn.SetWriteDeadline(now.Add(10 * time.Second))
	return c.conn.WriteMessage(websocket.TextMessage, reply)
}

// deliver counts, checks and times one publication.
func (f *fleet) deliver(c *wsClient, d delivery, now time.Time) {
	if !d.stamp.IsZero() && d.stamp.Before(f.p.Start) {
		c.early.Add(1)
		return
	}
	c.received.Add(1)
	if d.pos != (position{}) {
		if !d.pos.after(c.lastPos) {
			c.posDisorder.Add(1)
		}
		c.lastPos = d.pos
	}
	if c.tenant != "" && d.tenant != c.tenant {
		c.foreign.Add(1)
	}
	if d.hasSeq {
		if c.lastSeq == nil {
			c.lastSeq = map[int64]int64{}
		}
		if last, seen := c.lastSeq[d.row]; seen && d.seq <= last {
			c.disorder.Add(1)
		} else {
			c.lastSeq[d.row] = d.seq
		}
	}
	if d.stamp.IsZero() {
		c.noStamp.Add(1)
		return
	}
	f.hist.record(c.idx, now.Sub(d.stamp))
}

// ended records why a connection ended, unless hubload closed it.
func (f *fleet) ended(err error) {
	if f.closing.Load() {
		return
	}
	reason := err.Error()
	var ce *websocket.CloseError
	if errors.As(err, &ce) {
		reason = fmt.Sprintf("close %d %s", ce.Code, ce.Text)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closeErr[reason]++; f.closeErr[reason] == 1 {
		fmt.Fprintf(f.p.Log, "a connection ended: %s\n", reason)
	}
}

// close ends every connection with 1000 and waits for the reading
// goroutines. It may be called more than once.
func (f *fleet) close() {
	if f.stopAfter != nil {
		f.stopAfter()
	}
	if f.closing.Swap(true) {
		f.wg.Wait()
		return
	}
	f.mu.Lock()
	clients := f.clients
	f.mu.Unlock()
	msg := websocket.FormatCloseMessage(websocket.CloseNormalClosure, "")
	deadline := time.Now().Add(time.Second)
	for _, c := range clients {
		_ = c.conn.WriteControl(websocket.CloseMessage, msg, deadline)
		c.conn.Close()
	}
	f.wg.Wait()
}

// connected is the number of clients subscribed.
func (f *fleet) connected() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.clients)
}

// received sums the broadcasts received so far.
func (f *fleet) received() uint64 {
	f.mu.Lock()
	clients := f.clients
	f.mu.Unlock()
	var n uint64
	for _, c := range clients {
		n += c.received.Load()
	}
	return n
}

// dropped is how many connections the server ended, by reason.
func (f *fleet) dropped() map[string]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make(map[string]int, len(f.closeErr))
	for k, v := range f.closeErr {
		out[k] = v
	}
	return out
}
