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
	NodeHeartbeat(ctx context.Context, node string) error
	NodeStop(ctx context.Context, node string) error
	LeaseAcquire(ctx context.Context, p store.LeaseAcquireParams) error
	LeaseRelease(ctx context.Context, id string) error
	LeaseUpdateChannels(ctx context.Context, id string, channels []string) error
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
	// StopTimeout bounds the graceful stop: closing sessions with 1012 and
	// releasing the leases (default 3s).
	StopTimeout time.Duration
	Logger      *slog.Logger
}

// Node keeps this node's connections counted cluster-wide: it holds a
// lease per connection, heartbeats so that they count, closes the
// connections the cluster wants closed (revoked key, deactivated client,
// admin kick), and on stop closes every session with 1012 and releases
// the leases at once.
type Node struct {
	store LeaseStore
	hub   *Hub
	cfg   NodeConfig

	mu       sync.Mutex // guards leases, unsynced
	leases   map[string]store.LeaseAcquireParams
	unsynced bool // a lease write failed: the database's view must be rebuilt
}

// NewNode returns the node's lease keeper.
func NewNode(s LeaseStore, h *Hub, cfg NodeConfig) *Node {
	cfg.Beat = cmp.Or(cfg.Beat, time.Second)
	cfg.StopTimeout = cmp.Or(cfg.StopTimeout, 3*time.Second)
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Node{store: s, hub: h, cfg: cfg, leases: map[string]store.LeaseAcquireParams{}}
}

// ID is the node's ID.
func (n *Node) ID() string { return n.cfg.ID }

// Acquire takes a lease for a connection that has authenticated; the
// store's sentinels say why one is refused.
func (n *Node) Acquire(ctx context.Context, p store.LeaseAcquireParams) error {
	p.Node = n.cfg.ID
	if err := n.store.LeaseAcquire(ctx, p); err != nil {
		return err
	}
	n.mu.Lock()
	n.leases[p.ID] = p
	n.mu.Unlock()
	return nil
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
	n.mu.Unlock()
	if ok {
		if err := n.store.LeaseRelease(ctx, id); err != nil {
			n.markUnsynced(err)
		}
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

func (n *Node) beat(ctx context.Context) {
	if err := n.store.NodeHeartbeat(ctx, n.cfg.ID); err != nil {
		if ctx.Err() == nil {
			n.markUnsynced(err)
		}
		return
	}
	n.mu.Lock()
	var live []store.LeaseAcquireParams
	unsynced := n.unsynced
	if unsynced {
		live = slices.Collect(maps.Values(n.leases))
	}
	n.mu.Unlock()
	if unsynced {
		if err := n.store.LeaseSync(ctx, n.cfg.ID, live); err != nil {
			return
		}
		n.mu.Lock()
		n.unsynced = false
		n.mu.Unlock()
		n.cfg.Logger.Info("leases rebuilt after a database outage", "connections", len(live))
	}
	closes, err := n.store.LeaseCloseList(ctx, n.cfg.ID)
	if err != nil {
		return
	}
	for _, c := range closes {
		n.hub.CloseID(c.ID, wire.ClosePolicy, c.Reason)
	}
}

// stop closes every session with 1012 so that clients reconnect elsewhere
// and resume, then deletes the node and its leases so that their slots are
// free at once (SPEC §3, §9).
func (n *Node) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), n.cfg.StopTimeout)
	defer cancel()
	n.hub.Drain(ctx, wire.CloseRestart, wire.MsgShutdown)
	ctx, cancel = context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := n.store.NodeStop(ctx, n.cfg.ID); err != nil {
		n.cfg.Logger.Warn("releasing the node's leases failed; they stop counting once its heartbeat is stale", "err", err)
	}
}
