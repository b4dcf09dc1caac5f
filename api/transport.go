package api

import (
	"context"
	"errors"
	"net"
	"slices"
	"strings"
	"sync"

	"github.com/labstack/echo/v4"
	"github.com/olahol/melody"

	"github.com/hubdev/hub/hub"
	"github.com/hubdev/hub/store"
)

// What the three transports share: each is an adapter that decodes its
// own requests and implements hub.Conn; keys, channel names and the melody
// plumbing are the same for all of them.

// apiKeyAuth is a key that authenticated.
type apiKeyAuth struct {
	key    string // canonical
	id     int64
	client string
}

// errKeyRefused: the key is unknown, revoked, or its client inactive. The
// transports answer all three alike, so a caller learns nothing more.
var errKeyRefused = errors.New("api key refused")

// lookupKey authenticates a canonical key; other errors mean the database
// failed.
func lookupKey(ctx context.Context, st Store, key string) (apiKeyAuth, error) {
	a, err := st.APIKeyLookup(ctx, key)
	switch {
	case errors.Is(err, store.ErrNotFound), err == nil && (a.RevokedAt != nil || !a.ClientActive):
		return apiKeyAuth{}, errKeyRefused
	case err != nil:
		return apiKeyAuth{}, err
	}
	return apiKeyAuth{key: key, id: a.ID, client: a.Client}, nil
}

// resolveChannels returns the named channels, or every attached one when
// none is named; unknown is the first name that is not attached.
func resolveChannels(h *hub.Hub, names []string) (channels []string, unknown string) {
	attached := h.Channels() // sorted
	if len(names) == 0 {
		return attached, ""
	}
	for _, n := range names {
		if _, ok := slices.BinarySearch(attached, n); !ok {
			return nil, n
		}
	}
	return names, ""
}

// unknownChannelName is the channel a hub.ErrUnknownChannel names: one
// detached between a transport's check and the subscribe.
func unknownChannelName(err error) string {
	return strings.TrimPrefix(err.Error(), hub.ErrUnknownChannel.Error()+": ")
}

// melodyConn is a WebSocket connection's state, kept under wsKey.
type melodyConn interface {
	message(data []byte)
	binary()
	session() *hub.Session
	gone()
}

// writeBuffers is the WebSocket write buffers' pool (gorilla's BufferPool).
var writeBuffers = &sync.Pool{}

// newMelody returns a melody instance for hub sessions; the caller adds
// HandleConnect, which stores the connection's melodyConn under wsKey.
func newMelody(cfg Config, protocol string) *melody.Melody {
	m := melody.New()
	// Write buffers come from a pool shared by every connection and are
	// held only while a message is written, so an idle connection holds
	// none; they are large enough that a big row goes out in few frames.
	m.Upgrader.WriteBufferPool = writeBuffers
	m.Upgrader.WriteBufferSize = 16 << 10
	m.Config.MessageBufferSize = wsCredits + 1           // see wsCredits
	m.Config.MaxMessageSize = int64(cfg.MaxMessageBytes) // gorilla closes with 1009 past it
	m.Config.WriteWait = cfg.WriteTimeout
	get := func(ms *melody.Session) melodyConn { return ms.MustGet(wsKey).(melodyConn) }
	m.HandleMessage(func(ms *melody.Session, data []byte) { get(ms).message(data) })
	m.HandleMessageBinary(func(ms *melody.Session, _ []byte) { get(ms).binary() })
	m.HandleSentMessage(func(ms *melody.Session, _ []byte) {
		socketOf(ms).written()
		get(ms).session().Sent()
	})
	m.HandleDisconnect(func(ms *melody.Session) { get(ms).gone() })
	m.HandleError(func(ms *melody.Session, err error) {
		switch {
		case errors.Is(err, melody.ErrMessageBufferFull):
			socketOf(ms).written() // dropped
			cfg.Logger.Error("websocket buffer overflow", "protocol", protocol, "remote", ms.Request.RemoteAddr)
		case writeTimedOut(err):
			get(ms).session().Jammed() // melody drops the connection next (SPEC §6)
		}
	})
	return m
}

// serveMelody upgrades a request; the connection is counted in cfg.Conns
// until it ends, since http.Server.Shutdown does not wait for it.
func serveMelody(cfg Config, m *melody.Melody, c echo.Context) error {
	if cfg.Conns != nil {
		cfg.Conns.wg.Add(1)
		defer cfg.Conns.wg.Done()
	}
	if err := m.HandleRequest(&batchHijacker{ResponseWriter: c.Response()}, c.Request()); err != nil {
		cfg.Logger.Debug("websocket upgrade failed", "err", err)
	}
	return nil
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
