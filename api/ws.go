package api

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/olahol/melody"

	"github.com/hubdev/hub/hub"
	"github.com/hubdev/hub/hub/wire"
	"github.com/hubdev/hub/store"
)

// Store is the part of the store the transports use.
type Store interface {
	APIKeyLookup(ctx context.Context, key string) (store.APIKeyAuth, error)
}

// Leases holds the connections' slots of their keys' limits cluster-wide
// (SPEC §3); *hub.Node is one.
type Leases interface {
	Acquire(ctx context.Context, p store.LeaseAcquireParams) error
	Release(ctx context.Context, id string)
	UpdateChannels(ctx context.Context, id string, channels []string)
}

// Conns counts the live WebSocket connections, so that a server can wait
// for them: http.Server.Shutdown does not wait for hijacked connections.
type Conns struct {
	wg sync.WaitGroup
}

// Wait returns when every connection has ended and released its lease, or
// when ctx ends.
func (c *Conns) Wait(ctx context.Context) error {
	done := make(chan struct{})
	go func() { // ends when the connections do
		c.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// wsCredits is how many frames the hub may have handed to a connection's
// writer and not yet seen written: the most one write carries.
const wsCredits = 16

// maxInvalid invalid messages are answered within invalidWindow; the next
// one closes the connection (SPEC §4.1).
const (
	maxInvalid    = 20
	invalidWindow = time.Minute
)

// releaseTimeout bounds the release of a lease after its connection ended.
const releaseTimeout = 5 * time.Second

// wsA serves protocol A (SPEC §4) on one melody instance.
type wsA struct {
	cfg    Config
	m      *melody.Melody
	writes atomic.Uint64 // socket writes of its connections' writers
}

func newWSA(cfg Config) *wsA {
	w := &wsA{cfg: cfg}
	w.m = newMelody(cfg, cfg.HeartbeatInterval, w.connect)
	return w
}

// subscribe upgrades GET /ws/subscribe.
func (w *wsA) subscribe(c echo.Context) error { return serveMelody(w.cfg, w.m, c) }

// wsConn is one protocol A connection. Melody calls message and gone on
// the connection's read goroutine, one at a time; only the auth timer runs
// elsewhere.
type wsConn struct {
	wsBase
	w      *wsA
	authed atomic.Bool // a subscribe succeeded once; the auth timer checks it
	timer  *time.Timer
	// closeErr is the error frame sent right before the close frame.
	closeErr atomic.Pointer[[]byte]

	// Read goroutine only.
	key     string // canonical; "" until authenticated
	keyID   int64
	client  string
	leased  bool
	subID   int
	live    bool // subscribed now
	invalid []time.Time
}

func (w *wsA) connect(ms *melody.Session) {
	c := &wsConn{w: w}
	c.open(ms, c, wsOpen{
		cfg: w.cfg, protocol: hub.ProtocolA, writes: &w.writes,
		heartbeat:      func(time.Time) []byte { return wire.AppendHeartbeatA(nil) },
		heartbeatEvery: w.cfg.HeartbeatInterval,
	})
	if key, present := headerKey(ms.Request.Header); present {
		c.headerAuth(key) // no auth timeout then (SPEC §4.4)
		return
	}
	c.timer = time.AfterFunc(w.cfg.AuthTimeout, func() {
		if !c.authed.Load() {
			c.closeWith(wire.Refusal(wire.MsgSubscribeTimeout))
		}
	})
}

// stopTimer stops the auth timer and drops it, which an idle connection
// need not hold.
func (c *wsConn) stopTimer() {
	if c.timer != nil {
		c.timer.Stop()
		c.timer = nil
	}
}

// headerKey returns the key the upgrade request's headers name (SPEC
// §4.4): present is false without either header, and key is "" when they
// do not name one well-formed key.
func headerKey(h http.Header) (key string, present bool) {
	auth, hasAuth := h["Authorization"]
	xkey, hasX := h["X-Api-Key"]
	if !hasAuth && !hasX {
		return "", false
	}
	var keys []string
	if hasAuth {
		v := strings.TrimSpace(auth[0])
		scheme, rest, found := strings.Cut(v, " ")
		switch {
		case found && strings.EqualFold(scheme, "bearer"):
			v = strings.TrimSpace(rest)
		case found:
			return "", true // another scheme
		case strings.EqualFold(v, "bearer"):
			v = ""
		}
		keys = append(keys, v)
	}
	if hasX {
		keys = append(keys, strings.TrimSpace(xkey[0]))
	}
	for _, k := range keys {
		canon, ok := wire.CanonicalKey(k, false)
		if !ok || key != "" && canon != key {
			return "", true
		}
		key = canon
	}
	return key, true
}

// headerAuth authenticates the connection by the key of its headers, or
// refuses it after the upgrade, since browsers cannot read a 401.
func (c *wsConn) headerAuth(key string) {
	if key == "" {
		c.closeWith(wire.Refusal(wire.MsgInvalidToken))
		return
	}
	auth, err := lookupKey(c.ctx, c.w.cfg.Store, key)
	switch {
	case errors.Is(err, errKeyRefused):
		c.closeWith(wire.Refusal(wire.MsgInvalidToken))
		return
	case err != nil:
		c.unavailable(err)
		return
	}
	if c.acquireLease(c.ctx, auth, nil) {
		c.key, c.keyID, c.client = auth.key, auth.id, auth.client
		c.authed.Store(true)
		c.authenticated()
	}
}

func (c *wsConn) binary() { c.invalidMessage() }

// Close implements hub.Conn.
func (c *wsConn) Close(cl wire.Close) {
	var last []byte
	if f := c.closeErr.Load(); f != nil {
		last = *f
	}
	c.out.close(last, cl.Code, wire.CloseReason(cl.Reason))
}

// closeWith sends the error frame of cl's reason, then closes with cl.
func (c *wsConn) closeWith(cl wire.Close) {
	f := wire.AppendErrorA(nil, cl.Reason)
	c.closeErr.CompareAndSwap(nil, &f)
	c.sess.Close(cl)
}

func (c *wsConn) sendError(msg string) { c.sess.Send(wire.AppendErrorA(nil, msg)) }

func (c *wsConn) message(data []byte) {
	if c.closeErr.Load() != nil {
		// Refused and closing: frames the client sent meanwhile cost
		// nothing, in particular no more key lookups (issue 12).
		return
	}
	req, err := wire.DecodeA(data)
	if err != nil {
		c.invalidMessage()
		return
	}
	switch req.Type {
	case wire.TypePing:
		c.sess.Send(wire.AppendPongA(nil))
	case wire.TypeUnsubscribe:
		c.unsubscribe()
	case wire.TypeSubscribe:
		c.subscribe(req)
	}
}

func (c *wsConn) invalidMessage() { c.refuse(wire.MsgInvalidMessage) }

// refuse answers, with the error frame msg, a frame after which the
// connection stays open: one that is not a protocol A request, or a
// request refused (unknown channel, invalid since, apiKey cannot change,
// not subscribed). Each counts toward the invalid messages, and the 21st
// within a minute closes the connection (SPEC §4.1), so that a client
// cannot loop on refused subscribes that each cost work (issue 12).
func (c *wsConn) refuse(msg string) {
	now := time.Now()
	kept := c.invalid[:0]
	for _, t := range c.invalid {
		if now.Sub(t) < invalidWindow {
			kept = append(kept, t)
		}
	}
	c.invalid = append(kept, now)
	if len(c.invalid) > maxInvalid {
		c.closeWith(wire.Refusal(wire.MsgTooManyInvalid))
		return
	}
	c.sendError(msg)
}

func (c *wsConn) unsubscribe() {
	if !c.live {
		c.refuse(wire.MsgNotSubscribed)
		return
	}
	c.sess.Unsubscribe()
	c.live = false
	c.sess.Send(wire.AppendUnsubscribedA(nil, c.subID))
}

// subscribe checks a subscribe in the order of SPEC §4 step 7 and, when
// it passes, replaces the connection's subscription.
func (c *wsConn) subscribe(req wire.Request) {
	ctx := c.ctx
	key, ok := c.subscribeKey(req)
	if !ok {
		return
	}
	fresh := !c.leased
	auth := apiKeyAuth{key: c.key, id: c.keyID, client: c.client}
	if fresh {
		if auth, ok = c.authenticate(ctx, key); !ok {
			return
		}
	}
	all := len(req.Channels) == 0
	channels, ok := c.resolveChannels(req.Channels)
	if !ok {
		return
	}
	var since *store.Position
	if req.Since != "" {
		p, err := store.ParsePosition(req.Since)
		if err != nil {
			c.refuse(wire.MsgInvalidSince)
			return
		}
		since = &p
	}
	if fresh {
		if !c.acquireLease(ctx, auth, channels) {
			return
		}
		c.key, c.keyID, c.client = auth.key, auth.id, auth.client
		// Holding a lease, the connection counts toward its key's limit
		// instead (SPEC §3); released before the reply is queued.
		c.authenticated()
	}
	id := c.subID + 1
	_, err := c.sess.Subscribe(ctx, hub.Subscription{
		Client: auth.client, Channels: channels, All: all, Since: since,
		Reply: func(recovered bool) []byte {
			return wire.AppendSubscribedA(nil, wire.Subscribed{ID: id, Channels: channels, Resumed: since != nil, Recovered: recovered})
		},
	})
	if err != nil {
		if fresh {
			c.releaseLease()
		}
		c.subscribeFailed(err)
		return
	}
	c.subID, c.live = id, true
	c.authed.Store(true)
	c.stopTimer()
	if !fresh {
		c.w.cfg.Leases.UpdateChannels(ctx, c.id, channels)
	}
}

// subscribeKey returns the canonical key the subscribe is for; false after
// answering a refusal.
func (c *wsConn) subscribeKey(req wire.Request) (string, bool) {
	if !req.HasAPIKey {
		if c.key == "" {
			c.closeWith(wire.Refusal(wire.MsgAPIKeyRequired))
			return "", false
		}
		return c.key, true
	}
	key, ok := wire.CanonicalKey(req.APIKey, false)
	if !ok {
		c.closeWith(wire.Refusal(wire.MsgInvalidKeyFormat))
		return "", false
	}
	if c.key != "" && key != c.key {
		c.refuse(wire.MsgAPIKeyCannotChange)
		return "", false
	}
	return key, true
}

// authenticate looks the key up; false after closing the connection.
func (c *wsConn) authenticate(ctx context.Context, key string) (apiKeyAuth, bool) {
	auth, err := lookupKey(ctx, c.w.cfg.Store, key)
	switch {
	case errors.Is(err, errKeyRefused):
		c.closeWith(wire.Refusal(wire.MsgInvalidAPIKey))
		return apiKeyAuth{}, false
	case err != nil:
		c.unavailable(err)
		return apiKeyAuth{}, false
	}
	return auth, true
}

// resolveChannels returns the named channels, or every attached one when
// none is named; false after answering an unknown one.
func (c *wsConn) resolveChannels(names []string) ([]string, bool) {
	channels, unknown := resolveChannels(c.w.cfg.Hub, names)
	if unknown != "" {
		c.refuse(wire.UnknownChannel(unknown))
		return nil, false
	}
	return channels, true
}

// acquireLease takes a slot of the key's connection limit (SPEC §3); false
// after closing the connection.
func (c *wsConn) acquireLease(ctx context.Context, auth apiKeyAuth, channels []string) bool {
	err := c.w.cfg.Leases.Acquire(ctx, store.LeaseAcquireParams{
		ID: c.id, KeyID: auth.id, Client: auth.client,
		Protocol: store.ProtocolWS, RemoteAddr: c.remote, Channels: channels,
	})
	switch {
	case errors.Is(err, store.ErrConnectionLimit):
		c.closeWith(wire.Refusal(wire.MsgConnectionLimit))
	case errors.Is(err, store.ErrKeyInvalid):
		c.closeWith(wire.Refusal(wire.MsgInvalidAPIKey))
	case err != nil:
		c.unavailable(err)
	default:
		c.leased = true
		return true
	}
	return false
}

func (c *wsConn) releaseLease() {
	if !c.leased {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.ctx), releaseTimeout)
	defer cancel()
	c.w.cfg.Leases.Release(ctx, c.id)
	// A refused subscribe holds nothing (SPEC §3): without a lease the
	// connection is not authenticated.
	c.leased, c.key, c.keyID, c.client = false, "", 0, ""
}

func (c *wsConn) subscribeFailed(err error) {
	if errors.Is(err, hub.ErrUnknownChannel) {
		// The channel was detached between the check and the subscribe.
		c.refuse(wire.UnknownChannel(unknownChannelName(err)))
		return
	}
	c.unavailable(err)
}

// unavailable closes the connection when the database failed it: the
// client may try again later (SPEC §4.2).
func (c *wsConn) unavailable(err error) {
	if !errors.Is(err, context.Canceled) {
		c.logger().Error("protocol A subscribe failed", "err", err)
	}
	c.closeWith(wire.CloseUnavailable)
}

// gone ends the connection's hub session and releases its lease.
func (c *wsConn) gone() {
	c.stopTimer()
	c.out.stop()
	c.sess.Gone()
	c.releaseLease()
}
