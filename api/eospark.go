package api

import (
	"cmp"
	"context"
	"errors"
	"maps"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/olahol/melody"

	"github.com/hubdev/hub/hub"
	"github.com/hubdev/hub/hub/wire"
	"github.com/hubdev/hub/store"
)

// defaultEOSParkHeartbeat is protocol B's heartbeat interval when none is
// configured (HUB_EOSPARK_HEARTBEAT, SPEC §5).
const defaultEOSParkHeartbeat = 10 * time.Second

// maxEntriesB bounds a connection's (account, contract, action) entries,
// so that subscribes naming ever new actions cannot grow its memory: room
// for every account and contract with the empty action and each op.
const maxEntriesB = wire.MaxAccountsB * wire.MaxContractsB * 4

// msgTooManyEntriesB refuses a subscribe past maxEntriesB.
var msgTooManyEntriesB = "too many subscriptions (at most " + strconv.Itoa(maxEntriesB) + " per connection)"

// wsB serves protocol B, EOSPark-compatible (SPEC §5): GET /v1/ws. It
// authenticates at the upgrade: a connection holds its lease from then
// until it ends.
type wsB struct {
	wsServer
	heartbeat time.Duration
}

// newWSB returns protocol B's handler; heartbeat is HUB_EOSPARK_HEARTBEAT
// (default 10s). cfg has its defaults applied.
func newWSB(cfg Config, heartbeat time.Duration) *wsB {
	w := &wsB{heartbeat: cmp.Or(heartbeat, defaultEOSParkHeartbeat)}
	w.init(cfg, w.heartbeat, w.connect)
	return w
}

// wsBConn is one protocol B connection. Melody calls connect, message and
// gone on the connection's read goroutine, one at a time.
type wsBConn struct {
	wsBase
	w *wsB
	// refusal is the auth or error frame sent instead of the close message
	// when the connection is refused at the upgrade.
	refusal atomic.Pointer[[]byte]

	// Read goroutine only.
	lease *lease          // nil when refused
	since *store.Position // ?since=, until a subscribe has replayed it
	subs  subsB
}

func (w *wsB) connect(ms *melody.Session) {
	c := &wsBConn{w: w}
	c.open(ms, c, wsOpen{
		cfg: w.cfg, protocol: hub.ProtocolB, writes: &w.writes,
		heartbeat:      func(now time.Time) []byte { return wire.AppendHeartbeatB(nil, now) },
		heartbeatEvery: w.heartbeat,
	})
	c.authenticate()
}

// authenticate admits the upgrade request: its key (query or header
// apikey), its since, then the lease (repeat connection before limit,
// SPEC §5); a refusal closes the connection with 1008. Either way the
// connection is no longer pending after it.
func (c *wsBConn) authenticate() {
	defer c.authenticated()
	r := c.ms.Request
	q := r.URL.Query()
	ad, ref := c.w.adm.admit(c.ctx, admitRequest{
		conn: c.info(hub.ProtocolB), key: claimKey(true, q.Get("apikey"), r.Header.Get("apikey")), since: q.Get("since"),
	})
	if ref != nil {
		c.refused(ref)
		return
	}
	c.lease, c.since = ad.lease, ad.since
}

// refused answers a refusal at the upgrade with protocol B's frames.
func (c *wsBConn) refused(r *refusal) {
	switch r.kind {
	case refusedKey:
		c.refuse(wire.ErrnoForbidden, wire.MsgForbidden)
	case refusedRepeat:
		c.refuse(wire.ErrnoRepeat, wire.MsgNoRepeat)
	case refusedLimit:
		c.refuse(wire.ErrnoLimit, wire.MsgConnectionLimit)
	case refusedUnavailable:
		c.unavailable(r.err)
	default: // an invalid since
		c.closeWith(wire.AppendErrorB(nil, r.msg), r.msg)
	}
}

// refuse answers an authentication failure with its auth frame, then
// closes with 1008 and the same text.
func (c *wsBConn) refuse(errno int, msg string) {
	c.closeWith(wire.AppendAuthB(nil, errno, msg), msg)
}

// closeWith sends frame, then closes with 1008 and reason.
func (c *wsBConn) closeWith(frame []byte, reason string) {
	c.refusal.CompareAndSwap(nil, &frame)
	c.sess.Close(wire.Refusal(reason))
}

// unavailable closes the connection when the database failed it: the
// client may try again later (SPEC §2.3 "Outages").
func (c *wsBConn) unavailable(err error) {
	if !errors.Is(err, context.Canceled) {
		c.logger().Error("protocol B request failed", "err", err)
	}
	c.sess.Close(wire.CloseUnavailable)
}

// Close implements hub.Conn: the refusal frame, or else the close message
// of SPEC §5, then the close frame. The buffer keeps room for both.
func (c *wsBConn) Close(cl wire.Close) {
	last := wire.AppendCloseB(nil, cl.Code, cl.Reason)
	if f := c.refusal.Load(); f != nil {
		last = *f
	}
	c.out.close(last, cl)
}

func (c *wsBConn) sendError(msg string) { c.sess.Send(wire.AppendErrorB(nil, msg)) }

func (c *wsBConn) message(data []byte) {
	if c.lease == nil {
		return // refused; the close is on its way
	}
	req, err := wire.DecodeB(data)
	if errors.Is(err, wire.ErrInvalidMessage) {
		c.sendError(wire.MsgInvalidMessage)
		return
	}
	if err != nil {
		c.sess.Send(replyB(req.Type, err.Error()))
		return
	}
	known := c.w.cfg.Hub.Channels()
	next, reason := c.subs.change(req, func(name string) bool { _, ok := slices.BinarySearch(known, name); return ok })
	if reason != "" {
		c.sess.Send(replyB(req.Type, reason))
		return
	}
	c.apply(next, known, replyB(req.Type, ""))
}

// replyB is the reply to a subscribe or unsubscribe; reason "" is ok.
func replyB(msgType, reason string) []byte {
	if msgType == wire.MsgTypeSubscribe {
		return wire.AppendSubscribeB(nil, reason)
	}
	return wire.AppendUnsubscribeB(nil, reason)
}

// apply makes next the session's subscription, queueing reply before any
// event it brings. The first subscription replays ?since. known are the
// attached channels, sorted: a contract detached since it was subscribed
// stays in next but receives nothing (SPEC §2.2).
func (c *wsBConn) apply(next subsB, known []string, reply []byte) {
	ctx := c.ctx
	var channels []string
	for name := range next {
		if _, ok := slices.BinarySearch(known, name); ok {
			channels = append(channels, name)
		}
	}
	slices.Sort(channels)
	if len(next) == 0 {
		c.sess.Unsubscribe()
		c.sess.Send(reply)
		c.lease.update(ctx, nil)
	} else {
		_, ref := c.lease.subscribe(ctx, c.sess, hub.Subscription{
			Channels: channels, Match: next.match, Since: c.since,
			Reply: func(bool) []byte { return reply },
		}, true)
		switch {
		case ref == nil:
		case ref.kind == refusedChannel:
			// Detached between the check and the subscribe: refused.
			c.sess.Send(replyB(wire.MsgTypeSubscribe, wire.UnknownContract(ref.channel)))
			return
		default:
			c.unavailable(ref.err)
			return
		}
		c.since = nil
	}
	c.subs = next
}

func (c *wsBConn) binary() { c.sendError(wire.MsgInvalidMessage) }

// gone ends the connection's hub session and releases its lease.
func (c *wsBConn) gone() {
	c.out.stop()
	c.sess.Gone()
	c.lease.release(c.ctx)
}

// subsB is a protocol B connection's subscription, a set of (account,
// contract, action) entries kept as contract → account → actions, where
// account "*" is every subject (also none) and action "" every op (SPEC
// §5). A subsB is never changed once made: sessions match with it on
// other goroutines, so changes make a new one.
type subsB map[string]map[string]map[string]bool

// change returns the subscription after req, or the reason req is refused;
// known tells whether a contract names an attached channel. A refused
// subscribe changes nothing; an unsubscribe is never refused.
func (s subsB) change(req wire.RequestB, known func(string) bool) (subsB, string) {
	if req.Type == wire.MsgTypeUnsubscribe {
		return s.without(req.Accounts[0], req.Contracts[0], req.Action), ""
	}
	for _, name := range req.Contracts {
		if !known(name) {
			return s, wire.UnknownContract(name)
		}
	}
	next := s.clone()
	for _, contract := range req.Contracts {
		accounts := next[contract]
		if accounts == nil {
			accounts = map[string]map[string]bool{}
			next[contract] = accounts
		}
		for _, account := range req.Accounts {
			if accounts[account] == nil {
				accounts[account] = map[string]bool{}
			}
			accounts[account][req.Action] = true
		}
	}
	accounts, entries := next.count()
	switch {
	case accounts > wire.MaxAccountsB:
		return s, wire.MsgTooManyAccounts
	case len(next) > wire.MaxContractsB:
		return s, wire.MsgTooManyContracts
	case entries > maxEntriesB:
		return s, msgTooManyEntriesB
	}
	return next, ""
}

// without removes the entries of the pair with action, or all of them
// when action is "".
func (s subsB) without(account, contract, action string) subsB {
	actions := s[contract][account]
	if actions == nil || action != "" && !actions[action] {
		return s // not subscribed: still ok
	}
	next := s.clone()
	if action != "" {
		delete(next[contract][account], action)
	}
	if action == "" || len(next[contract][account]) == 0 {
		delete(next[contract], account)
	}
	if len(next[contract]) == 0 {
		delete(next, contract)
	}
	return next
}

func (s subsB) clone() subsB {
	next := make(subsB, len(s))
	for contract, accounts := range s {
		next[contract] = make(map[string]map[string]bool, len(accounts))
		for account, actions := range accounts {
			next[contract][account] = maps.Clone(actions)
		}
	}
	return next
}

// count returns the distinct accounts and the entries.
func (s subsB) count() (accounts, entries int) {
	seen := map[string]bool{}
	for _, byAccount := range s {
		for account, actions := range byAccount {
			seen[account] = true
			entries += len(actions)
		}
	}
	return len(seen), entries
}

// match reports whether an entry covers e; the hub has checked the
// channel and the tenant already.
func (s subsB) match(e *store.Event) bool {
	accounts := s[e.Channel]
	if star := accounts["*"]; star[""] || star[e.Op] {
		return true
	}
	own := accounts[e.Subject]
	return e.Subject != "" && (own[""] || own[e.Op])
}
