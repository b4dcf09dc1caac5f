package hub

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hubdev/hub/hub/wire"
	"github.com/hubdev/hub/store"
)

// Log is the part of the store the hub reads besides the reader's tail:
// catch-up pages, and the bounds a resume is checked against.
type Log interface {
	EventsFor(ctx context.Context, f store.EventFilter, maxRows int, maxBytes int64) (store.EventPage, error)
	Horizon(ctx context.Context) (store.Position, error)
	EventNewest(ctx context.Context) (store.Position, error)
	ChannelList(ctx context.Context) ([]string, error)
}

// Config configures a Hub.
type Config struct {
	// SendBuffer bounds the events queued per session (HUB_SEND_BUFFER,
	// default 1024); a session past it continues from the log.
	SendBuffer int
	// MaxLag: a session whose oldest unsent event waited longer is closed
	// with 1013 (HUB_MAX_LAG, default 30s).
	MaxLag time.Duration
	// PageSize is the catch-up page in events (default 1000).
	PageSize int
	// PageBytes bounds a catch-up page's payloads (default 4 MiB): rows
	// of a megabyte exist, and a page is held in memory.
	PageBytes int64
	// ChannelRefresh bounds how late an attach or detach is seen when its
	// notification was lost (default 5s).
	ChannelRefresh time.Duration
	Logger         *slog.Logger
}

func (c Config) withDefaults() Config {
	c.SendBuffer = cmp.Or(c.SendBuffer, 1024)
	c.MaxLag = cmp.Or(c.MaxLag, 30*time.Second)
	c.PageSize = cmp.Or(c.PageSize, 1000)
	c.PageBytes = cmp.Or(c.PageBytes, 4<<20)
	c.ChannelRefresh = cmp.Or(c.ChannelRefresh, 5*time.Second)
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// ErrUnknownChannel is returned by Subscribe; its message names the channel.
var ErrUnknownChannel = errors.New("unknown channel")

// Hub routes the events the reader hands over to the sessions allowed to
// see them. Sessions are indexed by channel and client, so an event costs
// in proportion to the sessions that receive it.
type Hub struct {
	log     Log
	cfg     Config
	ctx     context.Context // ends when Run returns; catch-ups run under it
	cancel  context.CancelFunc
	wg      sync.WaitGroup // catch-up goroutines
	refresh chan struct{}
	metrics metrics
	// transports counts connections whose transport has not called Gone:
	// a closed session may still be flushing its close frame.
	transports atomic.Int64

	channels atomic.Pointer[map[string]bool] // the attached channels

	mu        sync.RWMutex // guards the fields below; taken before any Session.mu
	sessions  map[*Session]struct{}
	byID      map[string]*Session
	byChannel map[string]map[string]map[*Session]struct{} // channel → client → sessions
	byClient  map[string]map[*Session]struct{}            // client → sessions subscribed to every channel
	pos       store.Position                              // the last event delivered
	marks     []mark                                      // recent batches: when each was read
	conns     [numProtocols]int                           // open sessions per protocol
	touched   []*Session                                  // the sessions a batch queued to; Deliver's alone
}

// markEvery is the resolution of read times: batches read within it share
// one mark, so a lag is overestimated by at most this much.
const markEvery = 10 * time.Millisecond

// mark records when the batches ending at last were read (the first of them).
type mark struct {
	last store.Position
	at   time.Time
}

// New returns a hub that starts delivering after start (the reader's start).
func New(log Log, start store.Position, cfg Config) *Hub {
	ctx, cancel := context.WithCancel(context.Background())
	h := &Hub{
		log: log, cfg: cfg.withDefaults(), ctx: ctx, cancel: cancel,
		refresh:   make(chan struct{}, 1),
		sessions:  map[*Session]struct{}{},
		byID:      map[string]*Session{},
		byChannel: map[string]map[string]map[*Session]struct{}{},
		byClient:  map[string]map[*Session]struct{}{},
		pos:       start,
	}
	h.channels.Store(&map[string]bool{})
	return h
}

// Run loads the channels and then watches for slow consumers, heartbeats
// and channel changes until ctx ends; it then stops every catch-up.
func (h *Hub) Run(ctx context.Context) error {
	defer func() {
		h.cancel()
		h.wg.Wait()
	}()
	if err := h.LoadChannels(ctx); err != nil && ctx.Err() == nil {
		h.cfg.Logger.Warn("loading channels failed", "err", err)
	}
	sweep := time.NewTicker(h.sweepEvery())
	defer sweep.Stop()
	poll := time.NewTicker(h.cfg.ChannelRefresh)
	defer poll.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case now := <-sweep.C:
			h.sweep(now)
		case <-poll.C:
			h.RefreshChannels()
		case <-h.refresh:
			if err := h.LoadChannels(ctx); err != nil && ctx.Err() == nil {
				h.cfg.Logger.Warn("loading channels failed", "err", err)
			}
		}
	}
}

func (h *Hub) sweepEvery() time.Duration {
	return min(max(h.cfg.MaxLag/10, 10*time.Millisecond), time.Second)
}

// RefreshChannels asks Run to reload the attached channels; the reader
// calls it when hub.attach or hub.detach rang.
func (h *Hub) RefreshChannels() {
	select {
	case h.refresh <- struct{}{}:
	default:
	}
}

// LoadChannels reads the attached channels now; a server calls it before
// it accepts connections, so that the first subscribe knows them.
func (h *Hub) LoadChannels(ctx context.Context) error {
	names, err := h.log.ChannelList(ctx)
	if err != nil {
		return err
	}
	set := make(map[string]bool, len(names))
	for _, n := range names {
		set[n] = true
	}
	h.channels.Store(&set)
	return nil
}

// Channels lists the attached channels by name.
func (h *Hub) Channels() []string {
	set := *h.channels.Load()
	names := make([]string, 0, len(set))
	for n := range set {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// ConnectParams describes a new connection.
type ConnectParams struct {
	// ID names the connection in leases and the admin API; unique per node.
	ID       string
	Conn     Conn
	Protocol Protocol
	// Credits is how many frames the transport's writer can hold; one is
	// kept free for the close frame.
	Credits int
	// Heartbeat, when set, is sent every HeartbeatEvery from now on.
	Heartbeat      func(now time.Time) []byte
	HeartbeatEvery time.Duration
}

// Connect registers a connection; it receives nothing until it subscribes.
func (h *Hub) Connect(p ConnectParams) *Session {
	s := &Session{
		id: p.ID, hub: h, conn: p.Conn, proto: p.Protocol,
		credits:   max(p.Credits-1, 1),
		heartbeat: p.Heartbeat, heartbeatEvery: p.HeartbeatEvery,
	}
	if p.Heartbeat != nil {
		s.nextBeat = time.Now().Add(p.HeartbeatEvery)
	}
	h.transports.Add(1)
	h.mu.Lock()
	h.sessions[s] = struct{}{}
	h.conns[s.proto]++
	if p.ID != "" {
		h.byID[p.ID] = s
	}
	h.mu.Unlock()
	return s
}

// CloseID closes the connection with that ID, if this node has it.
func (h *Hub) CloseID(id string, c wire.Close) bool {
	h.mu.RLock()
	s := h.byID[id]
	h.mu.RUnlock()
	if s == nil {
		return false
	}
	s.Close(c)
	return true
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
	h.mu.Lock()
	defer h.mu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return recovered, nil
	}
	fresh := s.sub == nil
	h.unindex(s)
	s.sub = &sub
	s.channels = slices.Compact(slices.Sorted(slices.Values(sub.Channels)))
	h.index(s)
	if sub.Reply != nil {
		s.push(entry{control: sub.Reply(recovered)})
	}
	switch {
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
	h.unindex(s)
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
		if e.msg == nil {
			kept = append(kept, e)
		}
	}
	clear(s.queue[len(kept):])
	s.queue, s.head, s.events = kept, 0, 0
}

// resumable tells whether the log still holds every event after since.
func (h *Hub) resumable(ctx context.Context, since store.Position) (bool, error) {
	horizon, err := h.log.Horizon(ctx)
	if err != nil {
		return false, err
	}
	newest, err := h.log.EventNewest(ctx)
	if err != nil {
		return false, err
	}
	return !since.Less(horizon) && !newest.Less(since), nil
}

// index and unindex must be called with h.mu and s.mu held.
func (h *Hub) index(s *Session) {
	sub := s.sub
	if sub.All {
		addTo(h.byClient, sub.Client, s)
		return
	}
	for _, c := range sub.Channels {
		byClient := h.byChannel[c]
		if byClient == nil {
			byClient = map[string]map[*Session]struct{}{}
			h.byChannel[c] = byClient
		}
		addTo(byClient, sub.Client, s)
	}
}

func (h *Hub) unindex(s *Session) {
	sub := s.sub
	if sub == nil {
		return
	}
	if sub.All {
		removeFrom(h.byClient, sub.Client, s)
		return
	}
	for _, c := range sub.Channels {
		if byClient := h.byChannel[c]; byClient != nil {
			removeFrom(byClient, sub.Client, s)
			if len(byClient) == 0 {
				delete(h.byChannel, c)
			}
		}
	}
}

func addTo(m map[string]map[*Session]struct{}, k string, s *Session) {
	set := m[k]
	if set == nil {
		set = map[*Session]struct{}{}
		m[k] = set
	}
	set[s] = struct{}{}
}

func removeFrom(m map[string]map[*Session]struct{}, k string, s *Session) {
	if set := m[k]; set != nil {
		delete(set, s)
		if len(set) == 0 {
			delete(m, k)
		}
	}
}

// Deliver fans a batch out to the live sessions; it is the reader's
// consumer, and is called by one goroutine at a time. An event reaches
// only sessions of its client (or, on a global channel, every subscriber
// of the channel). The whole batch is queued first, then each session it
// touched is pumped once, outside the hub's lock: a session that a batch
// brings several events gets them in one write, so a reader that falls
// behind under load reads larger pages and writes fewer times per event.
func (h *Hub) Deliver(_ context.Context, batch []store.Event) error {
	if len(batch) == 0 {
		return nil
	}
	now := time.Now()
	h.mu.Lock()
	for i := range batch {
		m := newMessage(batch[i], now)
		h.route(m)
	}
	h.pos = batch[len(batch)-1].Pos
	if n := len(h.marks); n > 0 && now.Sub(h.marks[n-1].at) < markEvery {
		h.marks[n-1].last = h.pos // one mark per markEvery bounds the memory at any batch rate
	} else {
		h.marks = append(h.marks, mark{last: h.pos, at: now})
	}
	h.trimMarks(now)
	h.metrics.events.Add(int64(len(batch)))
	touched := h.touched
	h.touched = nil
	h.mu.Unlock()
	for _, s := range touched {
		s.flush()
	}
	clear(touched)
	h.touched = touched[:0]
	return nil
}

// route must be called with h.mu held. The event's scope, not its client
// alone, decides who may see it (SPEC §2.2): a tenant channel's event
// without a client reaches no one, and so does an event of a channel that
// is not attached.
func (h *Hub) route(m *message) {
	e := &m.event
	byClient := h.byChannel[e.Channel]
	switch {
	case e.Scope == store.ScopeNone, e.Scope == store.ScopeTenant && e.Client == "":
		return
	case e.Client != "":
		h.offerAll(byClient[e.Client], m)
		h.offerAll(h.byClient[e.Client], m)
		return
	}
	for _, set := range byClient {
		h.offerAll(set, m)
	}
	for _, set := range h.byClient {
		h.offerAll(set, m)
	}
}

// offerAll offers m to each session of set. Must be called with h.mu held.
func (h *Hub) offerAll(set map[*Session]struct{}, m *message) {
	for s := range set {
		if s.offer(m) {
			h.touched = append(h.touched, s)
		}
	}
}

// trimMarks keeps the marks a lag computation can still need. Must be
// called with h.mu held.
func (h *Hub) trimMarks(now time.Time) {
	keep := 2 * h.cfg.MaxLag
	i := 0
	for i < len(h.marks)-1 && now.Sub(h.marks[i].at) > keep {
		i++
	}
	if i > 0 {
		h.marks = slices.Delete(h.marks, 0, i)
	}
}

// readAt is when this node read the event at p; now for an event it has
// not read yet; the zero time for one at or before its start position
// while it has read nothing since: a session's wait for such an event
// starts at its subscribe (SPEC §6), where "now" would make a replay on a
// fresh node never late. Must be called with h.mu held.
func (h *Hub) readAt(p store.Position, now time.Time) time.Time {
	i := sort.Search(len(h.marks), func(i int) bool { return !h.marks[i].last.Less(p) })
	switch {
	case i < len(h.marks):
		return h.marks[i].at
	case !h.pos.Less(p):
		return time.Time{}
	}
	return now
}

// waitAfter is when this node read the first event after p. Must be
// called with h.mu held.
func (h *Hub) waitAfter(p store.Position, now time.Time) time.Time {
	next := store.Position{Xid: p.Xid, ID: p.ID + 1}
	if p.ID == math.MaxInt64 { // a point below a watermark, not an event
		next = store.Position{Xid: p.Xid + 1}
	}
	return h.readAt(next, now)
}

// sweep closes slow consumers and sends heartbeats.
func (h *Hub) sweep(now time.Time) {
	var slow []*Session
	var beats []*Session
	h.mu.RLock()
	waitAfter := func(p store.Position) time.Time { return h.waitAfter(p, now) }
	for s := range h.sessions {
		s.mu.Lock()
		if s.lag(now, h.pos, waitAfter) > h.cfg.MaxLag {
			slow = append(slow, s)
		} else if s.heartbeat != nil && !now.Before(s.nextBeat) {
			s.nextBeat = now.Add(s.heartbeatEvery)
			beats = append(beats, s)
		}
		s.mu.Unlock()
	}
	h.mu.RUnlock()
	for _, s := range slow {
		s.closeSlow()
	}
	for _, s := range beats {
		s.Send(s.heartbeat(now))
	}
}

// Stats are the hub's counters since start and its gauges now, indexed
// by Protocol where per protocol.
type Stats struct {
	Sessions    int
	Connections [numProtocols]int // open sessions
	CatchingUp  int               // sessions reading from the log, not live
	Events      int64             // events read
	Batches     int64             // non-empty reads
	Deliveries  [numProtocols]int64
	SlowCloses  int64
	Position    store.Position
	// ReaderLag is how old the newest event of the latest read was when
	// it was handed over; 0 when that read found nothing (ObserveRead).
	ReaderLag time.Duration
	// OldestWrite is the age of the oldest open write transaction
	// (ObserveBacklog).
	OldestWrite time.Duration
	// Delivery is the time from reading an event to writing its frame.
	Delivery HistogramSnapshot
}

// Stats returns the current counters; it costs in proportion to the
// sessions.
func (h *Hub) Stats() Stats {
	h.mu.RLock()
	st := Stats{Sessions: len(h.sessions), Connections: h.conns, Position: h.pos}
	for s := range h.sessions {
		s.mu.Lock()
		if s.catching {
			st.CatchingUp++
		}
		s.mu.Unlock()
	}
	h.mu.RUnlock()
	st.Events = h.metrics.events.Load()
	st.Batches = h.metrics.batches.Load()
	st.SlowCloses = h.metrics.slowCloses.Load()
	for p := range st.Deliveries {
		st.Deliveries[p] = h.metrics.deliveries[p].Load()
	}
	st.ReaderLag = time.Duration(h.metrics.readerLag.Load())
	st.OldestWrite = time.Duration(h.metrics.oldestWrite.Load())
	st.Delivery = h.metrics.delivery.Snapshot()
	return st
}

// Drain closes every session, for a graceful shutdown (1012), and waits
// until their transports have let go of them or ctx ends.
func (h *Hub) Drain(ctx context.Context, c wire.Close) {
	h.CloseAll(c)
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for h.transports.Load() > 0 {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// CloseAll closes every session.
func (h *Hub) CloseAll(c wire.Close) {
	h.mu.RLock()
	all := make([]*Session, 0, len(h.sessions))
	for s := range h.sessions {
		all = append(all, s)
	}
	h.mu.RUnlock()
	for _, s := range all {
		s.Close(c)
	}
}
