package api

import (
	"context"
	"crypto/rand"
	"log/slog"
	"math"
	"net"
	"net/http"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/olahol/melody"

	"github.com/hubdev/hub/hub"
)

// What the WebSocket transports share: each is an adapter that decodes its
// own requests, is admitted through admission (admit.go) and implements
// hub.Conn over the melody plumbing below.

// wsServer is what the handler of a WebSocket protocol holds: one melody
// instance, and the admission of its connections.
type wsServer struct {
	cfg    Config
	adm    *admission
	m      *melody.Melody
	writes atomic.Uint64 // socket writes of its connections' writers
}

// init sets the server up for connections whose heartbeat comes every
// heartbeat; connect starts each connection.
func (s *wsServer) init(cfg Config, heartbeat time.Duration, connect func(*melody.Session)) {
	s.cfg, s.adm = cfg, newAdmission(cfg)
	s.m = newMelody(cfg, heartbeat, connect)
}

// serve upgrades a request of the protocol.
func (s *wsServer) serve(c echo.Context) error { return serveMelody(s.cfg, s.m, c) }

// melodyConn is a WebSocket connection's state, kept in its wsSocket.
type melodyConn interface {
	message(data []byte)
	binary()
	session() *hub.Session
	gone()
}

// wsBase is what a WebSocket connection keeps whatever its protocol; the
// protocol's connection embeds it.
type wsBase struct {
	id     string // the connection's and its lease's ID
	ms     *melody.Session
	out    *writer
	frame  *wsFraming // out's: pings and pongs
	sess   *hub.Session
	ctx    context.Context // outlives the upgrade request (see serveMelody)
	remote string
	log    *slog.Logger // the server's; see logger
	// pending is the connection's place among those not yet
	// authenticated; authenticated releases it, and so does the end of
	// the connection.
	pending *pendingSlot
}

// wsOpen describes a protocol's connections to wsBase.open.
type wsOpen struct {
	cfg            Config
	protocol       hub.Protocol
	writes         *atomic.Uint64 // the protocol's socket writes
	heartbeat      func(now time.Time) []byte
	heartbeatEvery time.Duration
}

// open starts a connection from melody's connect handler: its writer, its
// answers to the client's pings, and its hub session, whose heartbeats
// each carry a ping. conn is the protocol's connection that embeds b.
func (b *wsBase) open(ms *melody.Session, conn interface {
	melodyConn
	hub.Conn
}, o wsOpen) {
	sock := socketOf(ms)
	b.id, b.ms, b.ctx, b.remote, b.log = rand.Text(), ms, ms.Request.Context(), ms.Request.RemoteAddr, o.cfg.Logger
	b.pending, sock.pending = sock.pending, nil
	b.out, b.frame = newWSWriter(sock, o.cfg.WriteTimeout, o.writes)
	sock.owner = conn
	ms.WebsocketConnection().SetPingHandler(b.frame.pongTo)
	b.sess = o.cfg.Hub.Connect(hub.ConnectParams{
		ID: b.id, Conn: conn, Protocol: o.protocol, Credits: writerCredits,
		Heartbeat: func(now time.Time) []byte {
			b.frame.pingNext()
			return o.heartbeat(now)
		},
		HeartbeatEvery: o.heartbeatEvery,
	})
	b.out.attach(b.sess)
}

// Send implements hub.Conn; the writer queues them (the hub hands at most
// writerCredits frames at a time).
func (b *wsBase) Send(frames ...[]byte) { b.out.send(frames) }

func (b *wsBase) session() *hub.Session { return b.sess }

// info names the connection for its lease.
func (b *wsBase) info(p hub.Protocol) connInfo {
	return connInfo{id: b.id, remote: b.remote, protocol: p}
}

// authenticated ends the connection's pending state: it authenticated, or
// its authentication is over (protocol B).
func (b *wsBase) authenticated() { b.pending.release() }

// logger is built when needed: most connections never log.
func (b *wsBase) logger() *slog.Logger {
	return b.log.With("conn", b.id, "remote", b.remote)
}

// unusedWriteBuffers keeps gorilla from allocating a write buffer per
// connection: data goes out through wsFraming, and gorilla's control frames
// need none.
var unusedWriteBuffers = &sync.Pool{}

// newMelody returns a melody instance for hub sessions with heartbeat as
// their heartbeat interval (each heartbeat carries a ping); connect sets
// the connection's melodyConn as its wsSocket's owner. Melody upgrades,
// reads and tracks the sessions; wsFraming writes (see there why).
func newMelody(cfg Config, heartbeat time.Duration, connect func(*melody.Session)) *melody.Melody {
	m := melody.New()
	m.Upgrader.WriteBufferPool = unusedWriteBuffers
	// The read buffer is the connection's own for its life, and gorilla
	// needs no more than a control frame's 125 bytes: clients send few
	// requests, and longer ones are read past the buffer.
	m.Upgrader.ReadBufferSize = 128
	m.Config.MessageBufferSize = 1                       // melody writes nothing
	m.Config.PingPeriod = math.MaxInt64                  // wsFraming pings with the heartbeats
	m.Config.PongWait = heartbeat + pongGrace            // melody's reader waits for the pongs
	m.Config.MaxMessageSize = int64(cfg.MaxMessageBytes) // gorilla closes with 1009 past it
	get := func(ms *melody.Session) melodyConn { return socketOf(ms).owner }
	m.HandleConnect(func(ms *melody.Session) {
		onShortStack(func() { connect(ms) })
		// Melody keeps the upgrade request for the connection's life;
		// connect took what it needs, and an idle connection need not hold
		// a kilobyte of headers.
		ms.Request = nil
	})
	m.HandleMessage(func(ms *melody.Session, data []byte) { onShortStack(func() { get(ms).message(data) }) })
	m.HandleMessageBinary(func(ms *melody.Session, _ []byte) { onShortStack(get(ms).binary) })
	m.HandleDisconnect(func(ms *melody.Session) { get(ms).gone() })
	return m
}

// onShortStack runs f on a goroutine of its own and waits for it. The
// connection's read goroutine lives as long as the connection, and a
// goroutine's stack grows to the deepest call it made but shrinks only
// slowly; the handlers call the database through pgx, which is deep. So
// they run on goroutines that end, and an idle connection keeps only the
// few KiB its read needs. Client messages are rare, and a goroutine costs
// well under a microsecond.
func onShortStack(f func()) {
	done := make(chan any)
	go func() { // ends with f
		defer func() { done <- recover() }()
		f()
	}()
	if p := <-done; p != nil {
		panic(p) // for recoverConn, on the connection's goroutine
	}
}

// serveMelody upgrades a request. The connection then lives on a
// goroutine of its own, and the handler returns: net/http keeps what it
// allocated for a request (8 KiB of buffers, the response, the goroutine's
// grown stack) until the handler returns, and an idle connection should
// not hold it for its lifetime. The connection is counted in cfg.Conns
// until it ends, since http.Server.Shutdown does not wait for it. It
// takes a pending slot first, and answers 503 without upgrading when
// none is free; the slot is released once the connection authenticates,
// at the latest when it ends.
func serveMelody(cfg Config, m *melody.Melody, c echo.Context) error {
	slot, ok := cfg.pending.take(c.Request().RemoteAddr)
	if !ok {
		return tooManyPending(c)
	}
	h := &wsHijacker{ResponseWriter: c.Response(), done: make(chan struct{}), pending: slot}
	// The request's context ends when the handler returns, and through
	// its parents it holds net/http's per-connection state; the
	// connection's database calls must outlive both.
	r := c.Request().WithContext(context.Background())
	if cfg.Conns != nil {
		cfg.Conns.wg.Add(1)
	}
	go serveConn(cfg, m, h, r)
	<-h.done // hijacked, or the upgrade failed and answered
	return nil
}

// serveConn runs a connection to its end.
func serveConn(cfg Config, m *melody.Melody, h *wsHijacker, r *http.Request) {
	if cfg.Conns != nil {
		defer cfg.Conns.wg.Done()
	}
	defer h.handOver()
	defer h.pending.release() // the upgrade failed, or the connection never authenticated
	defer recoverConn(cfg.Logger, h, r.RemoteAddr)
	if err := m.HandleRequest(h, r); err != nil {
		cfg.Logger.Debug("websocket upgrade failed", "err", err)
	}
}

// recoverConn logs a panic of a connection's goroutine and drops the
// connection: one connection's bug must not end the process.
func recoverConn(log *slog.Logger, h *wsHijacker, remote string) {
	if err := recover(); err != nil {
		log.Error("websocket connection panic", "remote", remote, "err", err, "stack", string(debug.Stack()))
		if h.conn != nil {
			_ = h.conn.Close()
		}
	}
}

// socketSendBuffer is the kernel's send buffer per socket: modest, so that
// backpressure reaches the session's queue instead of hiding in the kernel
// (SPEC §6).
const socketSendBuffer = 64 << 10

// SendBufferListener sets socketSendBuffer on every TCP connection ln
// accepts, for every transport; serve the hub's handler on it.
func SendBufferListener(ln net.Listener) net.Listener { return sendBufferListener{ln} }

type sendBufferListener struct{ net.Listener }

func (l sendBufferListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tcp, ok := c.(*net.TCPConn); ok && err == nil {
		_ = tcp.SetWriteBuffer(socketSendBuffer) // a default-sized buffer only delays the backpressure
	}
	return c, err
}
