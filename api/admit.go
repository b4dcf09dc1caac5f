package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"

	"github.com/hubdev/hub/hub"
	"github.com/hubdev/hub/hub/wire"
	"github.com/hubdev/hub/store"
)

// Admission is the one path by which a connection of any transport
// becomes a connection of a key and a subscription of a hub session, in
// the order of SPEC §4 step 7: the key its sources name, the key's check,
// the channels, the since, the lease, then the subscription. It grants
// what was asked or returns a refusal; a transport keeps only its
// decoding, its encoding, and the mapping of a refusal to its own frames.

// refusalKind says what a transport does with a refusal.
type refusalKind uint8

const (
	// refusedKey: no key, a malformed one, an unknown or revoked one, or
	// an inactive client. The connection ends.
	refusedKey refusalKind = iota + 1
	// refusedLimit: the key is at its max_connections. The connection ends.
	refusedLimit
	// refusedRepeat: the key has a protocol B connection already (SPEC
	// §5). The connection ends.
	refusedRepeat
	// refusedChannel: a channel that is not attached. A protocol A
	// connection stays open (SPEC §4.1).
	refusedChannel
	// refusedRequest: a request the client may correct (invalid since,
	// apiKey cannot change, snapshot with since, snapshot too large). A
	// protocol A connection stays open.
	refusedRequest
	// refusedUnavailable: the database failed; the client may try again
	// later (close 1013).
	refusedUnavailable
)

// refusal is why admission refused a connection or a subscribe.
type refusal struct {
	kind    refusalKind
	msg     string // protocol A's and SSE's error text
	channel string // refusedChannel: the channel's name
	err     error  // refusedUnavailable: what failed, for the transport's log
}

func refuse(kind refusalKind, msg string) *refusal { return &refusal{kind: kind, msg: msg} }

func unknownChannel(name string) *refusal {
	return &refusal{kind: refusedChannel, msg: wire.UnknownChannel(name), channel: name}
}

func unavailable(err error) *refusal {
	return &refusal{kind: refusedUnavailable, msg: wire.MsgServiceUnavailable, err: err}
}

// close is the close that ends a connection refused with r, for the
// transports whose codes are protocol A's (SPEC §7).
func (r *refusal) close() wire.Close {
	if r.kind == refusedUnavailable {
		return wire.CloseUnavailable
	}
	return wire.Refusal(r.msg)
}

// keepsOpen reports whether a connection that can take another request
// stays open after r (SPEC §4.1).
func (r *refusal) keepsOpen() bool { return r.kind == refusedChannel || r.kind == refusedRequest }

// keyClaim is the key a request's sources name: canonical, or the message
// refusing them.
type keyClaim struct {
	key string
	msg string // when key is "": MsgAPIKeyRequired, MsgInvalidKeyFormat or MsgInvalidAPIKey
}

// absent reports whether no source named a key.
func (k keyClaim) absent() bool { return k.msg == wire.MsgAPIKeyRequired }

// claimKey reads the values a request's key sources sent, in the
// transport's order: empty values count as missing, a malformed one
// refuses the request, and sources that name different keys make the key
// invalid (SPEC §4.4). hyphenless accepts the 32 hex digits (protocol B
// and SSE, SPEC §3).
func claimKey(hyphenless bool, sent ...string) keyClaim {
	var key string
	for _, k := range sent {
		if k = strings.TrimSpace(k); k == "" {
			continue
		}
		canon, ok := wire.CanonicalKey(k, hyphenless)
		switch {
		case !ok:
			return keyClaim{msg: wire.MsgInvalidKeyFormat}
		case key != "" && canon != key:
			return keyClaim{msg: wire.MsgInvalidAPIKey}
		}
		key = canon
	}
	if key == "" {
		return keyClaim{msg: wire.MsgAPIKeyRequired}
	}
	return keyClaim{key: key}
}

// headerClaim is the claim of a request's key headers, Authorization
// (Bearer or bare, the scheme case-insensitive) and X-API-Key, followed by
// more sources; present is false without either header. Another
// Authorization scheme (Basic) makes the key invalid (SPEC §4.4).
func headerClaim(h http.Header, hyphenless bool, more ...string) (claim keyClaim, present bool) {
	auth, hasAuth := h["Authorization"]
	x, hasX := h["X-Api-Key"]
	var sent []string
	if hasAuth {
		v := strings.TrimSpace(auth[0])
		scheme, rest, found := strings.Cut(v, " ")
		switch {
		case found && strings.EqualFold(scheme, "bearer"):
			sent = append(sent, rest)
		case found:
			return keyClaim{msg: wire.MsgInvalidAPIKey}, true
		case !strings.EqualFold(v, "bearer"):
			sent = append(sent, v)
		}
	}
	if hasX {
		sent = append(sent, x[0])
	}
	return claimKey(hyphenless, append(sent, more...)...), hasAuth || hasX
}

// frameClaim is the claim of a protocol A subscribe's apiKey, which must be
// exactly a key in the 8-4-4-4-12 form; "" is no key.
func frameClaim(apiKey string) keyClaim {
	if apiKey == "" {
		return keyClaim{msg: wire.MsgAPIKeyRequired}
	}
	if key, ok := wire.CanonicalKey(apiKey, false); ok {
		return keyClaim{key: key}
	}
	return keyClaim{msg: wire.MsgInvalidKeyFormat}
}

// admission checks what connections ask for and grants their leases and
// subscriptions; one serves every transport of a node.
type admission struct {
	store  Store
	leases Leases
	hub    *hub.Hub
}

func newAdmission(cfg Config) *admission {
	return &admission{store: cfg.Store, leases: cfg.Leases, hub: cfg.Hub}
}

// connInfo names a connection in its lease and the admin API.
type connInfo struct {
	id       string
	remote   string
	protocol hub.Protocol
}

// admitRequest is what a connection asks for.
type admitRequest struct {
	conn connInfo
	key  keyClaim
	// held is the lease an earlier admission gave the connection: its key
	// is not looked up again, and a claim of another key is refused.
	held  *lease
	since string // a position, or "" for none
	// sub subscribes the session; nil admits the key alone (protocol B's
	// upgrade, protocol A's header authentication).
	sub *subRequest
	// leased, when set, is called once a new lease is taken and before
	// the subscription's reply is queued: the connection is no longer
	// pending then.
	leased func()
}

// subRequest is a subscription as a transport decoded it.
type subRequest struct {
	sess *hub.Session
	// channels are the names asked for, or channelList as a comma list
	// (a query parameter), split only once the key passed: nothing is
	// parsed for a request without a good key (issue 12). Neither names
	// every channel.
	channels    []string
	channelList string
	// snapshot asks for the current rows first (SPEC §10).
	snapshot bool
	// filter is the row filter as sent (SPEC §10), parsed after the
	// channels are known.
	filter json.RawMessage
	// reply is the frame confirming the subscription, queued before any
	// event it brings.
	reply func(admitted) []byte
}

// names returns the channels asked for.
func (r *subRequest) names() []string {
	if r.channelList != "" {
		return wire.SplitList(r.channelList)
	}
	return r.channels
}

// admitted is what admission granted.
type admitted struct {
	lease     *lease
	channels  []string // resolved; every attached one with all
	all       bool
	filter    wire.Filter
	since     *store.Position
	snapshot  bool
	recovered bool // since could be honoured; true without since
}

// subscribed describes the grant to the client as subscription id.
func (a admitted) subscribed(id int) wire.Subscribed {
	return wire.Subscribed{ID: id, Channels: a.channels, Resumed: a.since != nil, Recovered: a.recovered, Snapshot: a.snapshot}
}

// admit runs the checks in the order of SPEC §4 step 7, takes the lease
// and subscribes; the first check that fails answers. A refused request
// holds nothing that it did not hold before (SPEC §3).
func (a *admission) admit(ctx context.Context, r admitRequest) (admitted, *refusal) {
	var out admitted
	auth, ref := a.authenticate(ctx, r.key, r.held)
	if ref != nil {
		return out, ref
	}
	if r.sub != nil {
		if out.channels, out.all, ref = a.resolve(r.sub); ref != nil {
			return out, ref
		}
		if out.filter, ref = a.resolveFilter(r.sub.filter, out.channels); ref != nil {
			return out, ref
		}
	}
	if out.since, ref = parseSince(r.since); ref != nil {
		return out, ref
	}
	if r.sub != nil && r.sub.snapshot {
		if out.since != nil {
			return out, refuse(refusedRequest, wire.MsgSnapshotWithSince)
		}
		out.snapshot = true
	}
	out.lease = r.held
	if out.lease == nil {
		if out.lease, ref = a.acquire(ctx, r.conn, auth, out.channels); ref != nil {
			return out, ref
		}
		if r.leased != nil {
			r.leased()
		}
	}
	if r.sub == nil {
		return out, nil
	}
	sub := hub.Subscription{
		Client: auth.client, Channels: out.channels, All: out.all, Since: out.since, Snapshot: out.snapshot, Filter: out.filter,
		Reply: func(recovered bool) []byte {
			grant := out
			grant.recovered = recovered
			return r.sub.reply(grant)
		},
	}
	if out.recovered, ref = out.lease.subscribe(ctx, r.sub.sess, sub, r.held != nil); ref != nil {
		if r.held == nil {
			out.lease.release(ctx)
		}
		return admitted{}, ref
	}
	return out, nil
}

// authenticate checks the key claimed, or that it is held's.
func (a *admission) authenticate(ctx context.Context, claim keyClaim, held *lease) (apiKeyAuth, *refusal) {
	switch {
	case held != nil && claim.absent():
		return held.auth, nil
	case claim.msg != "":
		return apiKeyAuth{}, refuse(refusedKey, claim.msg)
	case held != nil && claim.key != held.auth.key:
		return apiKeyAuth{}, refuse(refusedRequest, wire.MsgAPIKeyCannotChange)
	case held != nil:
		return held.auth, nil
	}
	k, err := a.store.APIKeyLookup(ctx, claim.key)
	switch {
	case errors.Is(err, store.ErrNotFound), err == nil && (k.RevokedAt != nil || !k.ClientActive):
		// Unknown, revoked, inactive: answered alike, so that a caller
		// learns nothing more.
		return apiKeyAuth{}, refuse(refusedKey, wire.MsgInvalidAPIKey)
	case err != nil:
		return apiKeyAuth{}, unavailable(err)
	}
	return apiKeyAuth{key: claim.key, id: k.ID, client: k.Client}, nil
}

// resolve returns the named channels without repeats, or every attached
// one when none is named. Names come from a client (after its key was
// looked up, but a list can be as long as a frame), so the cost is
// linear: a map drops the repeats, and the distinct names kept never
// outnumber the attached channels, since the first unknown one ends the
// list (issue 12).
func (a *admission) resolve(r *subRequest) (channels []string, all bool, ref *refusal) {
	names := r.names()
	attached := a.hub.Channels() // sorted
	if len(names) == 0 {
		return attached, true, nil
	}
	seen := make(map[string]struct{}, min(len(names), len(attached)))
	for _, n := range names {
		if _, ok := slices.BinarySearch(attached, n); !ok {
			return nil, false, unknownChannel(n)
		}
		if _, dup := seen[n]; !dup {
			seen[n] = struct{}{}
			channels = append(channels, n)
		}
	}
	return channels, false, nil
}

// resolveFilter parses a subscription's row filter: a channel it names
// must be attached (else "Unknown channel") and subscribed (else "Invalid
// filter", as anything else malformed is).
func (a *admission) resolveFilter(raw json.RawMessage, channels []string) (wire.Filter, *refusal) {
	f, err := wire.ParseFilter(raw)
	if err != nil {
		return nil, refuse(refusedRequest, wire.MsgInvalidFilter)
	}
	attached := a.hub.Channels() // sorted
	for channel := range f {
		if _, ok := slices.BinarySearch(attached, channel); !ok {
			return nil, unknownChannel(channel)
		}
		if !slices.Contains(channels, channel) {
			return nil, refuse(refusedRequest, wire.MsgInvalidFilter)
		}
	}
	return f, nil
}

// parseSince returns the position s names; nil for "".
func parseSince(s string) (*store.Position, *refusal) {
	if s == "" {
		return nil, nil
	}
	p, err := store.ParsePosition(s)
	if err != nil {
		return nil, refuse(refusedRequest, wire.MsgInvalidSince)
	}
	return &p, nil
}

// acquire takes a slot of the key's connection limit (SPEC §3).
func (a *admission) acquire(ctx context.Context, c connInfo, auth apiKeyAuth, channels []string) (*lease, *refusal) {
	err := a.leases.Acquire(ctx, store.LeaseAcquireParams{
		ID: c.id, KeyID: auth.id, Client: auth.client,
		Protocol: c.protocol.String(), RemoteAddr: c.remote, Channels: channels,
	})
	switch {
	case errors.Is(err, store.ErrRepeatConnection):
		return nil, refuse(refusedRepeat, wire.MsgNoRepeat)
	case errors.Is(err, store.ErrConnectionLimit):
		return nil, refuse(refusedLimit, wire.MsgConnectionLimit)
	case errors.Is(err, store.ErrKeyInvalid):
		return nil, refuse(refusedKey, wire.MsgInvalidAPIKey)
	case err != nil:
		return nil, unavailable(err)
	}
	return &lease{leases: a.leases, id: c.id, auth: auth}, nil
}

// apiKeyAuth is a key that authenticated.
type apiKeyAuth struct {
	key    string // canonical
	id     int64
	client string
}

// lease is a connection's slot of its key's limit, from admission until
// the connection ends; it also records the connection's channels for the
// admin API. The connection's own goroutine uses it.
type lease struct {
	leases Leases
	id     string
	auth   apiKeyAuth
}

// subscribe subscribes sess for the lease's client; update records the
// subscription's channels in the lease (a lease taken with them already
// need not). A channel detached since it was checked refuses it.
func (l *lease) subscribe(ctx context.Context, sess *hub.Session, sub hub.Subscription, update bool) (recovered bool, ref *refusal) {
	sub.Client = l.auth.client
	recovered, err := sess.Subscribe(ctx, sub)
	switch {
	case errors.Is(err, hub.ErrUnknownChannel):
		return false, unknownChannel(strings.TrimPrefix(err.Error(), hub.ErrUnknownChannel.Error()+": "))
	case errors.Is(err, hub.ErrSnapshotTooLarge):
		return false, refuse(refusedRequest, wire.MsgSnapshotTooLarge)
	case err != nil:
		return false, unavailable(err)
	}
	if update {
		l.update(ctx, sub.Channels)
	}
	return recovered, nil
}

// update records the connection's channels for the admin API.
func (l *lease) update(ctx context.Context, channels []string) {
	l.leases.UpdateChannels(ctx, l.id, channels)
}

// release frees the slot; the connection ended, or its first subscribe
// was refused after the lease was taken. A nil lease holds nothing.
func (l *lease) release(ctx context.Context) {
	if l == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), releaseTimeout)
	defer cancel()
	l.leases.Release(ctx, l.id)
}
