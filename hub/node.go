package hub

import (
	"cmp"
	"context"
	"errors"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/hubdev/hub/hub/wire"
	"github.com/hubdev/hub/store"
)

// LeaseStore is the part of the store that holds this node's connection
// leases (SPEC §3).
type LeaseStore interface {
	BeatStore
	LeaseAcquire(ctx context.Context, p store.LeaseAcquireParams) error
	LeaseRelease(ctx context.Context, id string) error
	LeaseUpdateChannels(ctx context.Context, id string, channels []string) error
}

// BeatStore is the part of LeaseStore the node's own loop uses: the
// heartbeat, the resync, the look for connections to close, the stop.
type BeatStore interface {
	NodeHeartbeat(ctx context.Context, node string) (time.Time, error)
	NodeStop(ctx context.Context, node string) error
	LeaseCloseList(ctx context.Context, node string) ([]store.LeaseClose, error)
	LeaseSync(ctx context.Context, node string, live []store.LeaseAcquireParams) error
}

// NodeConfig configures a Node.
type NodeConfig struct {
	// ID names the node (HUB_NODE_ID).
	ID string
	// Beat is the interval of heartbeats and of the look for connections
	// to close (default 1s): revocation reaches every node within 2 s.
	Beat time.Duration
	// BeatTimeout bounds one beat's heartbeat and resync (default 5s, half
	// of store.NodeAliveFor), and half of it the look for connections to
	// close that follows. A beat that hangs (a dead connection, a stalled
	// server) is abandoned and the next one retries, before the node's
	// leases stop counting.
	BeatTimeout time.Duration
	// StopTimeout bounds the graceful stop: closing sessions with 1012 and
	// releasing the leases (default 3s).
	StopTimeout time.Duration
	// Beats is the store the node's own loop uses (BeatStore's calls);
	// default the store given to NewNode. Give it a pool that client
	// traffic cannot exhaust, so that a flood of subscribes and admin
	// requests cannot hold the heartbeat back past store.NodeAliveFor.
	Beats  BeatStore
	Logger *slog.Logger
}

// Node keeps this node's connections counted cluster-wide: it holds a
// lease per connection, heartbeats so that they count, closes the
// connections the cluster wants closed (revoked key, deactivated client,
// admin kick), and on stop closes every session with 1012 and releases
// the leases at once.
type Node struct {
	store LeaseStore // the connections' lease writes
	beats BeatStore
	hub   *Hub
	cfg   NodeConfig

	mu       sync.Mutex // guards leases, unsynced, syncs, row
	leases   map[string]store.LeaseAcquireParams
	unsynced bool // the database's view of the leases must be rebuilt
	// syncs counts the starts and ends of LeaseSync calls, so it is odd
	// while one runs. A lease write that overlaps a sync may be undone by
	// it (the sync's snapshot of leases predates the write), so such a
	// write marks the leases unsynced again; see overlapsSync.
	syncs uint64
	// row is when the node's row was created, as its last heartbeat said;
	// zero before the first.
	row time.Time

	started chan struct{} // see Started
	synced  sync.Once

	testSignals nodeTestSignals
}

// NewNode returns the node's lease keeper.
func NewNode(s LeaseStore, h *Hub, cfg NodeConfig) *Node {
	cfg.Beat = cmp.Or(cfg.Beat, time.Second)
	cfg.BeatTimeout = cmp.Or(cfg.BeatTimeout, store.NodeAliveFor/2)
	cfg.StopTimeout = cmp.Or(cfg.StopTimeout, 3*time.Second)
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	beats := cfg.Beats
	if beats == nil {
		beats = s
	}
	return &Node{store: s, beats: beats, hub: h, cfg: cfg, leases: map[string]store.LeaseAcquireParams{}, started: make(chan struct{})}
}

// ID is the node's ID.
func (n *Node) ID() string { return n.cfg.ID }

// Acquire takes a lease for a connection that has authenticated; the
// store's sentinels say why one is refused.
func (n *Node) Acquire(ctx context.Context, p store.LeaseAcquireParams) error {
	p.Node = n.cfg.ID
	syncs := n.syncCount()
	if err := n.store.LeaseAcquire(ctx, p); err != nil {
		if !refusal(err) {
			// It may have committed all the same (a deadline during the
			// commit): a resync drops the lease if so.
			n.markUnsynced(err)
		}
		return err
	}
	n.mu.Lock()
	n.leases[p.ID] = p
	n.overlapsSync(syncs)
	n.mu.Unlock()
	return nil
}

// refusal reports whether err is LeaseAcquire saying no, as opposed to
// failing.
func refusal(err error) bool {
	return errors.Is(err, store.ErrKeyInvalid) || errors.Is(err, store.ErrRepeatConnection) ||
		errors.Is(err, store.ErrConnectionLimit) || errors.Is(err, store.ErrExists)
}

func (n *Node) syncCount() uint64 {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.syncs
}

// overlapsSync marks the leases unsynced if a LeaseSync ran at any time
// since n.syncs was before: the sync may have deleted a lease acquired
// meanwhile, or restored one released meanwhile. Must be called with n.mu
// held.
func (n *Node) overlapsSync(before uint64) {
	if before%2 == 1 || n.syncs != before {
		n.unsynced = true
	}
}

// UpdateChannels records a connection's new channels for the admin list.
func (n *Node) UpdateChannels(ctx context.Context, id string, channels []string) {
	n.mu.Lock()
	p, ok := n.leases[id]
	if ok {
		p.Channels = channels
		n.leases[id] = p
	}
	n.mu.Unlock()
	if ok {
		if err := n.store.LeaseUpdateChannels(ctx, id, channels); err != nil && !errors.Is(err, store.ErrNotFound) {
			n.markUnsynced(err)
		}
	}
}

// Release frees a connection's lease, if it holds one.
func (n *Node) Release(ctx context.Context, id string) {
	n.mu.Lock()
	_, ok := n.leases[id]
	delete(n.leases, id)
	syncs := n.syncs
	n.mu.Unlock()
	if !ok {
		return
	}
	err := n.store.LeaseRelease(ctx, id)
	n.mu.Lock()
	n.overlapsSync(syncs)
	n.mu.Unlock()
	if err != nil {
		n.markUnsynced(err)
	}
}

func (n *Node) markUnsynced(err error) {
	n.mu.Lock()
	first := !n.unsynced
	n.unsynced = true
	n.mu.Unlock()
	if first {
		n.cfg.Logger.Warn("lease update failed; the leases will be rebuilt when the database answers", "err", err)
	}
}

// Run heartbeats until ctx ends, then stops the node gracefully.
func (n *Node) Run(ctx context.Context) error {
	t := time.NewTicker(n.cfg.Beat)
	defer t.Stop()
	for {
		n.beat(ctx)
		select {
		case <-ctx.Done():
			n.stop()
			return nil
		case <-t.C:
		}
	}
}

// beat heartbeats, rebuilds the leases if the database lost them, and
// closes the connections the cluster wants closed.
func (n *Node) beat(ctx context.Context) {
	bctx, cancel := context.WithTimeout(ctx, n.cfg.BeatTimeout)
	defer cancel()
	row, err := n.beats.NodeHeartbeat(bctx, n.cfg.ID)
	if err != nil {
		if ctx.Err() == nil {
			n.markUnsynced(err)
		}
		return
	}
	n.observeRow(row)
	n.sync(bctx)
	n.closeListed(ctx)
	n.synced.Do(func() { close(n.started) })
}

// Started is closed once the node has heartbeaten and written its leases
// for the first time. A lease taken before may be undone by that first
// write for up to a beat (the node notices and writes it again), so a
// server, or a test, that counts on exact limits from its first
// connection waits for it.
func (n *Node) Started() <-chan struct{} { return n.started }

// closeListed closes the connections the cluster wants closed. It runs
// whether or not the resync succeeded, with a deadline of its own: a
// resync that failed, or hung until the beat's deadline, must not hold
// back revocations (SPEC §3's 2 s) of the leases the database has. Half a
// BeatTimeout, so that a beat whose every step hangs still heartbeats
// again well within store.NodeAliveFor.
func (n *Node) closeListed(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, n.cfg.BeatTimeout/2)
	defer cancel()
	closes, err := n.beats.LeaseCloseList(ctx, n.cfg.ID)
	if err != nil {
		return
	}
	for _, c := range closes {
		n.hub.CloseID(c.ID, leaseClose(c.Reason))
	}
}

// observeRow notes when the node's row was created. On the first beat the
// leases are synced once, which drops any that a crashed process with the
// same node ID left behind; a row created anew since the last beat means
// the cluster forgot this node while it was stalled, and its leases with it.
func (n *Node) observeRow(row time.Time) {
	n.mu.Lock()
	first, forgotten := n.row.IsZero(), !n.row.IsZero() && !row.Equal(n.row)
	n.row = row
	if first || forgotten {
		n.unsynced = true
	}
	n.mu.Unlock()
	if forgotten {
		n.cfg.Logger.Warn("the cluster forgot this node while it was stalled; restoring its leases")
	}
}

// sync rebuilds the database's view of the leases if it may be wrong; a
// failed sync leaves them unsynced, for the next beat to retry.
func (n *Node) sync(ctx context.Context) {
	n.mu.Lock()
	if !n.unsynced {
		n.mu.Unlock()
		return
	}
	live := slices.Collect(maps.Values(n.leases))
	n.unsynced = false
	n.syncs++
	n.mu.Unlock()
	err := n.beats.LeaseSync(ctx, n.cfg.ID, live)
	n.mu.Lock()
	n.syncs++
	if err != nil {
		n.unsynced = true
	}
	n.mu.Unlock()
	if err != nil {
		return
	}
	n.testSignals.leasesSynced.signal(len(live))
	if len(live) > 0 {
		n.cfg.Logger.Info("leases rebuilt", "connections", len(live))
	}
}

// stop closes every session with 1012 so that clients reconnect elsewhere
// and resume, then deletes the node and its leases so that their slots are
// free at once (SPEC §3, §9).
func (n *Node) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), n.cfg.StopTimeout)
	defer cancel()
	n.hub.Drain(ctx, wire.CloseShutdown)
	ctx, cancel = context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := n.beats.NodeStop(ctx, n.cfg.ID); err != nil {
		n.cfg.Logger.Warn("releasing the node's leases failed; they stop counting once its heartbeat is stale", "err", err)
	}
}

// leaseClose is the close a connection gets for reason.
func leaseClose(reason store.LeaseCloseReason) wire.Close {
	switch reason {
	case store.LeaseCloseKeyRevoked:
		return wire.CloseKeyRevoked
	case store.LeaseCloseClientDeactivated:
		return wire.CloseClientDeactivated
	}
	return wire.CloseKicked
}
