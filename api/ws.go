package api

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

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

// writerCredits is how many frames the hub may have handed to a
// connection's writer and not yet seen written: the most one write
// carries.
const writerCredits = 16

// maxInvalid invalid messages are answered within invalidWindow; the next
// one closes the connection (SPEC §4.1).
const (
	maxInvalid    = 20
	invalidWindow = time.Minute
)

// releaseTimeout bounds the release of a lease after its connection ended.
const releaseTimeout = 5 * time.Second

// wsA serves protocol A (SPEC §4): GET /ws/subscribe.
type wsA struct{ wsServer }

func newWSA(cfg Config) *wsA {
	w := &wsA{}
	w.init(cfg, cfg.HeartbeatInterval, w.connect)
	return w
}

// wsConn is one protocol A connection. Melody calls message and gone on
// the connection's read goroutine, one at a time; only the auth timer runs
// elsewhere.
type wsConn struct {
	wsBase
	w      *wsA
	authed atomic.Bool // holds a lease; the auth timer checks it
	timer  *time.Timer
	authBy time.Time // the auth timeout's deadline; set before the timer
	// closeErr is the error frame sent right before the close frame.
	closeErr atomic.Pointer[[]byte]

	// Read goroutine only.
	lease   *lease // nil until authenticated
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
	if claim, present := headerClaim(ms.Request.Header, false); present {
		c.headerAuth(claim) // no auth timeout then (SPEC §4.4)
		return
	}
	c.authBy = time.Now().Add(w.cfg.AuthTimeout)
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

// headerAuth authenticates the connection by the key of its headers, or
// refuses it after the upgrade, since browsers cannot read a 401; every
// key refusal is "Invalid or missing token" there (SPEC §4.4).
func (c *wsConn) headerAuth(claim keyClaim) {
	ad, ref := c.w.adm.admit(c.ctx, admitRequest{conn: c.info(hub.ProtocolA), key: claim})
	if ref != nil {
		if ref.kind == refusedKey {
			ref = refuse(refusedKey, wire.MsgInvalidToken)
		}
		c.refused(ref)
		return
	}
	c.lease = ad.lease
	c.authed.Store(true)
	c.authenticated()
}

func (c *wsConn) binary() { c.invalidMessage() }

// Close implements hub.Conn.
func (c *wsConn) Close(cl wire.Close) {
	var last []byte
	if f := c.closeErr.Load(); f != nil {
		last = *f
	}
	c.out.close(last, cl)
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

// subscribe admits a subscribe (SPEC §4 step 7) and, when it passes,
// replaces the connection's subscription.
func (c *wsConn) subscribe(req wire.Request) {
	id := c.subID + 1
	fresh := c.lease == nil
	ad, ref := c.w.adm.admit(c.ctx, admitRequest{
		conn: c.info(hub.ProtocolA), key: frameClaim(req.APIKey), held: c.lease, since: req.Since,
		// Holding a lease, the connection counts toward its key's limit
		// instead (SPEC §3), and it has authenticated: a subscribe that
		// waits, past the auth timeout, for a place among the node's
		// snapshots is not timed out.
		leased: func() {
			c.authed.Store(true)
			c.authenticated()
		},
		sub: &subRequest{sess: c.sess, channels: req.Channels, snapshot: req.Snapshot, filter: req.Filter, reply: func(ad admitted) []byte {
			return wire.AppendSubscribedA(nil, ad.subscribed(id))
		}},
	})
	if ref != nil {
		if fresh {
			// The lease went back with the refusal (SPEC §3): the
			// connection is not authenticated, and its auth timeout
			// runs on from the upgrade.
			c.authed.Store(false)
			if time.Now().After(c.authBy) {
				c.closeWith(wire.Refusal(wire.MsgSubscribeTimeout))
				return
			}
		}
		c.refused(ref)
		return
	}
	c.lease, c.subID, c.live = ad.lease, id, true
	c.authed.Store(true)
	c.stopTimer()
}

// refused answers a refusal: an error frame, and a close unless the
// connection may try again (SPEC §4.1).
func (c *wsConn) refused(r *refusal) {
	switch {
	case r.kind == refusedUnavailable:
		if !errors.Is(r.err, context.Canceled) {
			c.logger().Error("protocol A subscribe failed", "err", r.err)
		}
		c.closeWith(wire.CloseUnavailable)
	case r.keepsOpen():
		c.refuse(r.msg)
	default:
		c.closeWith(r.close())
	}
}

// gone ends the connection's hub session and releases its lease.
func (c *wsConn) gone() {
	c.stopTimer()
	c.out.stop()
	c.sess.Gone()
	c.lease.release(c.ctx)
}
