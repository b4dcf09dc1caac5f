package main

import (
	"bytes"
	"context"
	"encoding/json"
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
	URL     string   // the hub's http(s) URL
	Keys    []string // the API key of each client
	Tenants []string // each client's tenant; nil on a global channel
	Channel string
	// After is the newest event before the run: older broadcasts (the
	// setup's INSERTs, which the hub may still be delivering) are not the
	// run's and are only counted as early.
	After       uint64
	SourceAddrs int
	Concurrency int
	Log         io.Writer
}

// fleet is the run's WebSocket clients; each has one reading goroutine.
type fleet struct {
	p         fleetParams
	stampKey  []byte
	tenantKey []byte
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
	idx      int
	tenant   []byte // nil on a global channel
	conn     *websocket.Conn
	received atomic.Uint64 // the run's broadcasts
	early    atomic.Uint64 // broadcasts of events before the run's
	foreign  atomic.Uint64 // broadcasts of another tenant
	disorder atomic.Uint64 // positions not after the previous one: duplicates or out of order
	noStamp  atomic.Uint64
	lastXid  uint64 // reading goroutine only
	lastID   uint64
}

// dialFleet opens and subscribes every client; those that fail are
// counted. It returns an error only when none connected or ctx ended.
func dialFleet(ctx context.Context, p fleetParams) (*fleet, error) {
	f := &fleet{p: p, closeErr: map[string]int{}, stampKey: []byte(`"updatedAt":`)}
	if p.Tenants != nil {
		f.stampKey, f.tenantKey = []byte(`"matchedAt":`), []byte(`"client":`)
	}
	wsURL, err := websocketURL(p.URL)
	if err != nil {
		return nil, err
	}
	dialers := make([]*websocket.Dialer, p.SourceAddrs)
	for i := range dialers {
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(2+i))}, Timeout: 30 * time.Second}
		dialers[i] = &websocket.Dialer{NetDialContext: d.DialContext, HandshakeTimeout: 30 * time.Second,
			ReadBufferSize: 4096, WriteBufferSize: 512}
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(p.Concurrency)
	for i := range p.Keys {
		g.Go(func() error {
			f.dialOne(gctx, dialers[i%len(dialers)], wsURL, i)
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

func websocketURL(httpURL string) (string, error) {
	u, err := url.Parse(httpURL)
	if err != nil {
		return "", fmt.Errorf("-url: %w", err)
	}
	u.Scheme = map[string]string{"http": "ws", "https": "wss"}[u.Scheme]
	if u.Scheme == "" {
		return "", fmt.Errorf("-url: %q is not http(s)", httpURL)
	}
	u.Path = "/ws/subscribe"
	return u.String(), nil
}

func (f *fleet) dialOne(ctx context.Context, d *websocket.Dialer, wsURL string, i int) {
	c := &wsClient{idx: i}
	if f.p.Tenants != nil {
		c.tenant = []byte(f.p.Tenants[i])
	}
	conn, err := f.subscribe(ctx, d, wsURL, f.p.Keys[i])
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

// subscribe opens one connection and waits for its "subscribed" reply.
func (f *fleet) subscribe(ctx context.Context, d *websocket.Dialer, wsURL, key string) (*websocket.Conn, error) {
	conn, resp, err := d.DialContext(ctx, wsURL, nil)
	if err != nil {
		return nil, fmt.Errorf("dial: %w", err)
	}
	resp.Body.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() }) // Ctrl-C ends the wait for the reply
	defer stop()
	req, _ := json.Marshal(map[string]any{"type": "subscribe", "apiKey": key, "channels": []string{f.p.Channel}})
	_ = conn.SetWriteDeadline(time.Now().Add(30 * time.Second))
	_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	if err := conn.WriteMessage(websocket.TextMessage, req); err != nil {
		conn.Close()
		return nil, fmt.Errorf("send subscribe: %w", err)
	}
	_, msg, err := conn.ReadMessage()
	if err == nil && !bytes.HasPrefix(msg, []byte(`{"type":"subscribed"`)) {
		err = fmt.Errorf("subscribe answered %s", msg)
	}
	if err != nil {
		conn.Close()
		return nil, err
	}
	_ = conn.SetReadDeadline(time.Time{})
	return conn, nil
}

// read counts and times c's broadcasts until the connection ends.
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
		f.frame(c, buf, time.Now())
	}
}

// frame takes one message received at now.
func (f *fleet) frame(c *wsClient, msg []byte, now time.Time) {
	b, ok := parseBroadcast(msg, f.stampKey, f.tenantKey)
	if !ok {
		return // heartbeat, pong
	}
	if b.ID <= f.p.After {
		c.early.Add(1)
		return
	}
	c.received.Add(1)
	if b.Xid < c.lastXid || (b.Xid == c.lastXid && b.ID <= c.lastID) {
		c.disorder.Add(1)
	}
	c.lastXid, c.lastID = b.Xid, b.ID
	if c.tenant != nil && !bytes.Equal(b.Tenant, c.tenant) {
		c.foreign.Add(1)
	}
	if b.Stamp.IsZero() {
		c.noStamp.Add(1)
		return
	}
	f.hist.record(c.idx, now.Sub(b.Stamp))
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
