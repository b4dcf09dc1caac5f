package hub

import (
	"cmp"
	"context"
	"errors"
	"log/slog"
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
	// The snapshots of SPEC §10 (see snapshot.go).
	SnapshotBegin(ctx context.Context, channels []string) (*store.Snapshot, error)
	SnapshotSettle(ctx context.Context, xid uint64) error
	SnapshotSeam(ctx context.Context, sn *store.Snapshot, channels []string) (store.Position, error)
	SnapshotUnseen(ctx context.Context, sn *store.Snapshot, channels []string, after, seam store.Position, limit int) ([]store.Event, error)
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
	// SnapshotMaxRows refuses a snapshot of more rows
	// (HUB_SNAPSHOT_MAX_ROWS, default 100,000).
	SnapshotMaxRows int
	// MaxSnapshots bounds the snapshots sending rows at once on this node
	// (default 2); each holds a database connection meanwhile, so keep it
	// well below the pool's size. Others wait for a place.
	MaxSnapshots int
	Logger       *slog.Logger
}

func (c Config) withDefaults() Config {
	c.SendBuffer = cmp.Or(c.SendBuffer, 1024)
	c.MaxLag = cmp.Or(c.MaxLag, 30*time.Second)
	c.PageSize = cmp.Or(c.PageSize, 1000)
	c.PageBytes = cmp.Or(c.PageBytes, 4<<20)
	c.ChannelRefresh = cmp.Or(c.ChannelRefresh, 5*time.Second)
	c.SnapshotMaxRows = cmp.Or(c.SnapshotMaxRows, 100_000)
	c.MaxSnapshots = cmp.Or(c.MaxSnapshots, 2)
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
	// snapshots holds a place per snapshot sending rows (MaxSnapshots).
	snapshots chan struct{}
	metrics   metrics
	// transports counts connections whose transport has not called Gone:
	// a closed session may still be flushing its close frame.
	transports atomic.Int64

	channels atomic.Pointer[map[string]bool] // the attached channels

	mu       sync.RWMutex // guards the fields below; taken before any Session.mu
	sessions map[*Session]struct{}
	byID     map[string]*Session
	idx      index             // who receives what
	pos      store.Position    // the last event delivered
	marks    []mark            // recent batches: when each was read
	conns    [numProtocols]int // open sessions per protocol
	touched  []*Session        // the sessions a batch queued to; Deliver's alone
}

// New returns a hub that starts delivering after start (the reader's start).
func New(log Log, start store.Position, cfg Config) *Hub {
	ctx, cancel := context.WithCancel(context.Background())
	h := &Hub{
		log: log, cfg: cfg.withDefaults(), ctx: ctx, cancel: cancel,
		refresh:  make(chan struct{}, 1),
		sessions: map[*Session]struct{}{},
		byID:     map[string]*Session{},
		idx:      newIndex(),
		pos:      start,
	}
	h.snapshots = make(chan struct{}, h.cfg.MaxSnapshots)
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

// forget removes s from the hub's maps. Must be called with h.mu and s.mu
// held.
func (h *Hub) forget(s *Session) {
	h.idx.remove(s, s.sub)
	delete(h.sessions, s)
	h.conns[s.proto]--
	if h.byID[s.id] == s {
		delete(h.byID, s.id)
	}
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
		h.idx.route(&m.event, func(set sessionSet) {
			for s := range set {
				if s.offer(m) {
					h.touched = append(h.touched, s)
				}
			}
		})
	}
	h.pos = batch[len(batch)-1].Pos
	h.markRead(now)
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
	// FilterChecks counts the row filter checks of live events: one per
	// event and distinct filter, however many sessions have it.
	FilterChecks int64
	Position     store.Position
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
	st.FilterChecks = h.metrics.filterChecks.Load()
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
