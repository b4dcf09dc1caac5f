package hub

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/hubdev/hub/hub/wire"
	"github.com/hubdev/hub/store"
)

// Conn is one client connection as the hub sees it; package api adapts
// melody and SSE to it. Neither method may block: Send hands frames, in
// order, to the transport's writer, which has room for them (the hub never
// has more frames outstanding than the credits the session was given), and
// calls Session.Sent once frames are written. Send must not keep frames,
// the slice: the session reuses it.
type Conn interface {
	Send(frames ...[]byte)
	Close(c wire.Close)
}

// Subscription is what a session receives.
type Subscription struct {
	Client string
	// Channels are the subscribed channel names; with All, every channel,
	// including those attached later.
	Channels []string
	All      bool
	// Match, when set, further filters events (protocol B's accounts and
	// actions).
	Match func(*store.Event) bool
	// Filter restricts channels to the events and snapshot rows whose
	// payload passes their filter (SPEC §10); it never widens what the
	// client may see. The hub interns it.
	Filter wire.Filter
	// Since asks for every event after this position first (SPEC §4.3).
	Since *store.Position
	// Snapshot asks for the current rows first, then every change they
	// do not show (SPEC §10); not with Since.
	Snapshot bool
	// Reply is the frame confirming the subscription; it is queued before
	// any event the subscription brings. recovered tells whether Since
	// could be honoured.
	Reply func(recovered bool) []byte
}

// entry is a frame waiting in a session's queue: an event, a snapshot's
// row, or a control frame (replies, heartbeats). Events and rows count
// toward the queue's bound and the session's lag; control frames do not.
type entry struct {
	msg     *message
	row     []byte // a snapshot row's frame
	control []byte
	since   time.Time // when the event or row began to wait for this session
}

// counted reports whether e counts toward the queue's bound and the lag.
func (e *entry) counted() bool { return e.msg != nil || e.row != nil }

// Session is one connection's delivery state: its subscription, its
// bounded queue, and its place in the log. Deliveries come either live
// from the hub's batches or, after the queue overflowed or for a resume,
// from the log at the session's own pace; the cursor keeps the seam
// between the two free of gaps and duplicates.
type Session struct {
	id    string
	gone  sync.Once
	hub   *Hub
	conn  Conn
	proto Protocol

	heartbeat      func(now time.Time) []byte
	heartbeatEvery time.Duration

	mu        sync.Mutex // guards the fields below
	sub       *Subscription
	channels  []string       // sorted: smaller than a set for the few a session has
	gen       int            // bumped when the cursor is moved by a (re)subscribe
	live      bool           // takes events from the hub's batches
	catching  bool           // a catch-up goroutine runs for it
	cursor    store.Position // every event up to here is queued or filtered out
	handed    store.Position // the last event handed to the transport
	subAt     time.Time
	queue     []entry
	head      int
	events    int      // events (not control frames) in the queue
	inflight  []flight // frames handed to the transport, oldest first from inHead
	inHead    int
	credits   int
	nextBeat  time.Time
	closed    bool
	touched   bool          // queued to by the batch the hub is delivering; pumped after it
	out       [][]byte      // pump's frames for one Send, kept for the next
	roomReady chan struct{} // signalled when the queue drains below its bound; made by the first catch-up
}

// flight is a frame the transport holds: an event's position and when it
// began to wait, or a control frame (zero values).
type flight struct {
	pos   store.Position
	since time.Time
}

// maxControl bounds control frames queued beyond the event bound: a client
// that sends pings without reading the replies is a slow consumer too.
const maxControl = 64

// Sent is called by the transport after it wrote the next n frames handed
// to it; a transport that writes frames in batches reports each batch once.
func (s *Session) Sent(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var now time.Time
	for range min(n, len(s.inflight)-s.inHead) {
		if since := s.inflight[s.inHead].since; !since.IsZero() {
			if now.IsZero() {
				now = time.Now()
			}
			s.hub.metrics.delivery.Observe(now.Sub(since))
		}
		s.inHead++
	}
	if s.inHead == len(s.inflight) { // reuse the array: no garbage per frame
		s.inflight, s.inHead = s.inflight[:0], 0
	}
	s.credits += n
	s.pump()
}

// Send queues a control frame behind what is queued already.
func (s *Session) Send(frame []byte) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.push(entry{control: frame})
	over := len(s.queue)-s.head-s.events > maxControl
	s.pump()
	s.mu.Unlock()
	if over {
		s.closeSlow()
	}
}

// Close ends the session from the server's side: queued frames are
// dropped, the transport sends code and reason.
func (s *Session) Close(c wire.Close) {
	if s.detach() {
		s.conn.Close(c)
	}
}

// Gone is called by the transport when the connection ended.
func (s *Session) Gone() {
	s.detach()
	s.gone.Do(func() { s.hub.transports.Add(-1) })
}

// Jammed is called by the transport when a write blocked past its write
// timeout: no close frame can pass, the transport drops the connection, and
// it counts as a slow-consumer close (SPEC §6) unless the session was
// closed already.
func (s *Session) Jammed() {
	if s.detach() {
		s.hub.metrics.slowCloses.Add(1)
	}
}

// ID is the connection's ID.
func (s *Session) ID() string { return s.id }

// detach removes the session from the hub; false if it was gone already.
func (s *Session) detach() bool {
	s.hub.mu.Lock()
	defer s.hub.mu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.detachLocked()
}

// detachLocked is detach for a caller that checks more under the same
// locks. Must be called with hub.mu and s.mu held.
func (s *Session) detachLocked() bool {
	if s.closed {
		return false
	}
	s.closed = true
	s.hub.forget(s)
	s.sub, s.queue, s.head, s.events = nil, nil, 0, 0
	s.signalRoom()
	return true
}

// Subscribed reports whether the session has a subscription.
func (s *Session) Subscribed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sub != nil
}

// push must be called with s.mu held.
func (s *Session) push(e entry) {
	if s.head > 0 && s.head == len(s.queue) {
		s.queue, s.head = s.queue[:0], 0
	} else if s.head > 64 && s.head > len(s.queue)/2 {
		n := copy(s.queue, s.queue[s.head:])
		clear(s.queue[n:])
		s.queue, s.head = s.queue[:n], 0
	}
	s.queue = append(s.queue, e)
	if e.counted() {
		s.events++
	}
}

// pump hands queued frames to the transport while it has credits, all in
// one Send: a transport writes what it is handed at once with one system
// call. Must be called with s.mu held.
func (s *Session) pump() {
	out := s.out[:0]
	for s.credits > 0 && s.head < len(s.queue) {
		e := s.queue[s.head]
		s.queue[s.head] = entry{}
		s.head++
		s.credits--
		var f flight
		switch {
		case e.msg != nil:
			s.events--
			f = flight{pos: e.msg.event.Pos, since: e.since}
			s.handed = f.pos
			s.hub.metrics.deliveries[s.proto].Add(1)
			out = append(out, e.msg.frame(s.proto))
		case e.row != nil:
			s.events-- // no position, and no delivery of an event
			out = append(out, e.row)
		default:
			out = append(out, e.control)
		}
		if len(s.inflight) == cap(s.inflight) && s.inHead > 0 {
			n := copy(s.inflight, s.inflight[s.inHead:])
			s.inflight, s.inHead = s.inflight[:n], 0
		}
		s.inflight = append(s.inflight, f)
	}
	if len(out) > 0 {
		s.conn.Send(out...)
		clear(out)
	}
	s.out = out[:0]
	if cap(s.out) > maxKeptOut {
		s.out = nil
	}
	if s.events < s.hub.cfg.SendBuffer {
		s.signalRoom()
	}
}

// maxKeptOut bounds the frame slice a session keeps between pumps: a
// catch-up's large pump should not leave every session that had one with
// a large slice.
const maxKeptOut = 64

func (s *Session) signalRoom() {
	select {
	case s.roomReady <- struct{}{}:
	default:
	}
}

// matches reports whether the session's subscription takes e; m is e's
// message on the live path, whose filter results sessions share, and nil
// elsewhere. Must be called with s.mu held.
func (s *Session) matches(e *store.Event, m *message) bool {
	sub := s.sub
	if sub == nil {
		return false
	}
	if !e.Visible(sub.Client) {
		return false // a key never sees another client's rows
	}
	if !sub.All {
		if _, ok := slices.BinarySearch(s.channels, e.Channel); !ok {
			return false
		}
	}
	if sub.Match != nil && !sub.Match(e) {
		return false
	}
	if f := sub.Filter[e.Channel]; f != nil {
		if m != nil {
			return m.passes(f, &s.hub.metrics.filterChecks)
		}
		return f.Match(e.Payload)
	}
	return true
}

// offer is the live path: called by the hub, in position order, for each
// event the index routes to this session. It queues the event; the hub
// pumps the session once the whole batch is routed (Hub.Deliver). It
// reports whether the session was touched for the first time in the
// batch. Must be called with hub.mu held.
func (s *Session) offer(m *message) (first bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.live || s.closed || !s.cursor.Less(m.event.Pos) || !s.matches(&m.event, m) {
		return false
	}
	if s.events >= s.hub.cfg.SendBuffer {
		// The queue is full: stop taking live events and continue from the
		// log after the cursor, at the session's pace (SPEC §6).
		s.live = false
		s.hub.startCatchUp(s)
		return false
	}
	s.push(entry{msg: m, since: m.readAt})
	s.cursor = m.event.Pos
	first, s.touched = !s.touched, true
	return first
}

// flush pumps a session the batch touched.
func (s *Session) flush() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.touched = false
	s.pump()
}

// lag is how long the oldest event the session still has to send has been
// waiting; hubPos and waitAfter describe the live stream. Must be called
// with s.mu held.
func (s *Session) lag(now time.Time, hubPos store.Position, waitAfter func(store.Position) time.Time) time.Duration {
	for i := s.head; i < len(s.queue); i++ {
		if s.queue[i].counted() {
			return now.Sub(s.queue[i].since)
		}
	}
	if s.sub != nil && !s.live && s.cursor.Less(hubPos) {
		return now.Sub(maxTime(waitAfter(s.cursor), s.subAt))
	}
	return 0
}

// closeSlow closes a slow consumer with its resume position (SPEC §6).
func (s *Session) closeSlow() {
	s.mu.Lock()
	pos := s.resumePoint()
	s.mu.Unlock()
	s.hub.metrics.slowCloses.Add(1)
	s.Close(wire.SlowConsumer(pos.String()))
}

// filter is what the session's catch-up reads. Must be called with s.mu
// held and a subscription.
func (s *Session) filter() store.EventFilter {
	f := store.EventFilter{After: s.cursor, Client: s.sub.Client}
	if !s.sub.All {
		// Never nil, which would read every channel: a protocol B session
		// whose contracts are all detached subscribes to none (SPEC §5).
		f.Channels = s.channels
		if f.Channels == nil {
			f.Channels = []string{}
		}
	}
	return f
}

// resumePoint is the position a client closed now resumes from without a
// gap: the last event handed to the transport while events wait in the
// queue, else the cursor, which a catch-up moves past the events that
// were not for this session (issue 12 §5): a quiet client behind other
// clients' events then makes progress with every reconnect. Must be
// called with s.mu held.
func (s *Session) resumePoint() store.Position {
	if s.events > 0 {
		return s.handed
	}
	return s.cursor
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// Subscribe replaces the session's subscription. Channels continuing from
// the previous subscription go on without gap or duplicate; with Since,
// the events after it come first (SPEC §4.3). It returns whether Since
// could be honoured; without Since, true.
func (s *Session) Subscribe(ctx context.Context, sub Subscription) (recovered bool, err error) {
	h := s.hub
	known := *h.channels.Load()
	if sub.All {
		sub.Channels = h.Channels()
	}
	for _, c := range sub.Channels {
		if !known[c] {
			return false, fmt.Errorf("%w: %s", ErrUnknownChannel, c)
		}
	}
	recovered = true
	if sub.Since != nil {
		if recovered, err = h.resumable(ctx, *sub.Since); err != nil {
			return false, err
		}
	}
	var snap *snapshotRun
	if sub.Snapshot {
		if snap, err = h.beginSnapshot(ctx, s.proto, sub); err != nil {
			return false, err
		}
	}
	var orphan *snapshotRun
	defer func() { orphan.abandon() }() // after the locks: it talks to the database
	h.mu.Lock()
	defer h.mu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		orphan = snap
		return recovered, nil
	}
	fresh := s.sub == nil
	h.idx.remove(s, s.sub)
	s.sub = &sub
	s.channels = slices.Compact(slices.Sorted(slices.Values(sub.Channels)))
	h.idx.add(s, s.sub)
	if sub.Reply != nil {
		s.push(entry{control: sub.Reply(recovered)})
	}
	switch {
	case snap != nil:
		s.gen++
		s.cursor, s.handed, s.subAt, s.live = snap.start(), snap.start(), time.Now(), false
		s.dropEvents()
		h.startSnapshot(s, s.gen, snap)
	case sub.Since != nil && recovered:
		s.gen++
		s.cursor, s.handed, s.subAt, s.live = *sub.Since, *sub.Since, time.Now(), false
		s.dropEvents()
		h.startCatchUp(s)
	case fresh || sub.Since != nil:
		s.gen++
		s.cursor, s.handed, s.subAt, s.live = h.pos, h.pos, time.Now(), true
		s.dropEvents()
	}
	s.pump()
	return recovered, nil
}

// Unsubscribe stops delivery and drops the events still queued.
func (s *Session) Unsubscribe() {
	h := s.hub
	h.mu.Lock()
	defer h.mu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	h.idx.remove(s, s.sub)
	s.sub, s.live = nil, false
	s.gen++
	s.dropEvents()
}

// dropEvents removes queued events, keeping control frames. Must be called
// with s.mu held.
func (s *Session) dropEvents() {
	if s.events == 0 {
		return
	}
	kept := s.queue[:0]
	for _, e := range s.queue[s.head:] {
		if !e.counted() {
			kept = append(kept, e)
		}
	}
	clear(s.queue[len(kept):])
	s.queue, s.head, s.events = kept, 0, 0
}
