package hub_test

import (
	"cmp"
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/hubdev/hub/hub"
	"github.com/hubdev/hub/store"
	"github.com/hubdev/hub/store/storetest"
)

// testNode is one hub node: its own pool, hub and lease keeper.
type testNode struct {
	pool *pgxpool.Pool
	hub  *hub.Hub
	node *hub.Node
	stop context.CancelFunc
	done chan error
}

func startNode(t *testing.T, u, id string) *testNode {
	t.Helper()
	return startNodeWith(t, u, hub.NodeConfig{ID: id}, nil)
}

// startNodeWith starts a node configured by cfg (beating every 100 ms
// unless it says otherwise) whose loop uses beats(the node's store), when
// beats is not nil.
func startNodeWith(t *testing.T, u string, cfg hub.NodeConfig, beats func(*store.Store) hub.BeatStore) *testNode {
	t.Helper()
	pool, err := store.Connect(context.Background(), u)
	require.NoError(t, err)
	st := store.New(pool)
	n := &testNode{pool: pool, hub: hub.New(st, store.Position{}, hub.Config{}), done: make(chan error, 1)}
	cfg.Beat = cmp.Or(cfg.Beat, 100*time.Millisecond)
	if beats != nil {
		cfg.Beats = beats(st)
	}
	n.node = hub.NewNode(st, n.hub, cfg)
	n.node.InitTestSignals()
	ctx, cancel := context.WithCancel(context.Background())
	n.stop = cancel
	go func() { n.done <- n.node.Run(ctx) }()
	t.Cleanup(func() {
		n.shutdown(t)
		pool.Close()
	})
	return n
}

func (n *testNode) shutdown(t *testing.T) {
	n.stop()
	if n.done != nil {
		require.NoError(t, <-n.done)
		n.done = nil
	}
}

// connect opens a fake connection on the node holding a lease of key.
func (n *testNode) connect(t *testing.T, key store.APIKey, id string) (*fakeConn, error) {
	c := newFakeConn()
	s := n.hub.Connect(hub.ConnectParams{ID: id, Conn: c, Protocol: hub.ProtocolA, Credits: 8})
	c.sess = s
	err := n.node.Acquire(context.Background(), store.LeaseAcquireParams{ID: id, KeyID: key.ID, Client: key.Client, Protocol: "ws"})
	if err != nil {
		s.Gone()
		return nil, err
	}
	t.Cleanup(func() {
		s.Gone()
		n.node.Release(context.Background(), id)
	})
	return c, nil
}

func (c *fakeConn) closed() (int, string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.code, c.why
}

func newKey(t *testing.T, pool *pgxpool.Pool, client string, max int) store.APIKey {
	t.Helper()
	st := store.New(pool)
	require.NoError(t, st.ClientEnsure(context.Background(), client))
	k, _, err := st.APIKeyCreate(context.Background(), store.APIKeyCreateParams{Client: client, MaxConnections: max})
	require.NoError(t, err)
	return k
}

func TestTwoNodesShareTheLimit(t *testing.T) {
	t.Parallel()
	u := storetest.NewDB(t)
	n1, n2 := startNode(t, u, "node-1"), startNode(t, u, "node-2")
	key := newKey(t, n1.pool, "acme", 5)
	var refused int
	for i := range 8 {
		n := n1
		if i%2 == 1 {
			n = n2
		}
		if _, err := n.connect(t, key, fmt.Sprintf("c%d", i)); err != nil {
			require.ErrorIs(t, err, store.ErrConnectionLimit)
			refused++
		}
	}
	require.Equal(t, 3, refused, "5 connections across both nodes, no more")
}

func TestRevocationClosesOnEveryNode(t *testing.T) {
	t.Parallel()
	u := storetest.NewDB(t)
	n1, n2 := startNode(t, u, "node-1"), startNode(t, u, "node-2")
	key := newKey(t, n1.pool, "acme", 5)
	other := newKey(t, n1.pool, "acme", 5)
	conn, err := n2.connect(t, key, "on-2")
	require.NoError(t, err)
	bystander, err := n2.connect(t, other, "bystander")
	require.NoError(t, err)

	_, err = store.New(n1.pool).APIKeyRevoke(context.Background(), key.ID)
	require.NoError(t, err)
	code, why := conn.waitClosed(t, 2*time.Second, "revoking on node 1 closes the connection on node 2 within 2 s")
	require.Equal(t, 1008, code)
	require.Equal(t, "api key revoked", why)

	_, err = store.New(n1.pool).ClientSetActive(context.Background(), "acme", false)
	require.NoError(t, err)
	_, why = bystander.waitClosed(t, 2*time.Second, "deactivating the client closes its connections")
	require.Equal(t, "client deactivated", why)
}

func TestGracefulStopFreesSlotsAtOnce(t *testing.T) {
	t.Parallel()
	u := storetest.NewDB(t)
	n1, n2 := startNode(t, u, "node-1"), startNode(t, u, "node-2")
	key := newKey(t, n1.pool, "acme", 1)
	conn, err := n1.connect(t, key, "first")
	require.NoError(t, err)
	_, err = n2.connect(t, key, "second")
	require.ErrorIs(t, err, store.ErrConnectionLimit)

	n1.shutdown(t)
	code, why := conn.closed()
	require.Equal(t, 1012, code, "closed with service restart")
	require.NotEmpty(t, why)
	_, err = n2.connect(t, key, "second")
	require.NoError(t, err, "the stopped node's lease is gone at once")
}

// A node that loses its database stops heartbeating; its leases stop
// counting within 15 s (SPEC §3).
func TestDeadNodeLeasesExpire(t *testing.T) {
	t.Parallel()
	u := storetest.NewDB(t)
	n1, n2 := startNode(t, u, "node-1"), startNode(t, u, "node-2")
	key := newKey(t, n1.pool, "acme", 1)
	_, err := n1.connect(t, key, "first")
	require.NoError(t, err)
	// Cut node 1 off: its pool is closed, its heartbeats fail from now on.
	n1.pool.Close()
	start := time.Now()
	require.Eventually(t, func() bool {
		_, err := n2.connect(t, key, "second")
		return err == nil
	}, 15*time.Second, 100*time.Millisecond)
	t.Logf("slot free after %s", time.Since(start).Round(100*time.Millisecond))
}

// leaseIDs are the connections /admin/connections would list.
func leaseIDs(t *testing.T, pool *pgxpool.Pool) []string {
	t.Helper()
	list, err := store.New(pool).LeaseList(context.Background())
	require.NoError(t, err)
	var ids []string
	for _, l := range list {
		ids = append(ids, l.ID)
	}
	return ids
}

// A node stalled past the cleanup age was forgotten by another node's
// heartbeat, its leases with it (done here by hand, in one transaction
// with a revocation that happens meanwhile). Once it beats again its
// connections count and are listed again, and revocations reach them: the
// one from while it was gone, and later ones within 2 s (SPEC §3).
func TestForgottenNodeRestoresItsLeases(t *testing.T) {
	t.Parallel()
	u := storetest.NewDB(t)
	n1, n2 := startNode(t, u, "node-1"), startNode(t, u, "node-2")
	key := newKey(t, n1.pool, "acme", 1)
	gone := newKey(t, n1.pool, "acme", 1)
	conn, err := n1.connect(t, key, "c1")
	require.NoError(t, err)
	revoked, err := n1.connect(t, gone, "c2")
	require.NoError(t, err)

	tx, err := n2.pool.Begin(context.Background())
	require.NoError(t, err)
	_, err = tx.Exec(context.Background(), `DELETE FROM hub.nodes WHERE node = 'node-1'`)
	require.NoError(t, err)
	_, err = tx.Exec(context.Background(), `UPDATE hub.api_keys SET revoked_at = now() WHERE id = $1`, gone.ID)
	require.NoError(t, err)
	require.NoError(t, tx.Commit(context.Background()))

	_, why := revoked.waitClosed(t, 2*time.Second, "the revocation made while the node was forgotten reaches its connection")
	require.Equal(t, "api key revoked", why)
	// The beat that found the node forgotten rebuilt its leases before it
	// looked for connections to close.
	for n1.node.WaitLeasesSynced(t, 2*time.Second) == 0 { // the first beat's, before the connections
	}
	require.Contains(t, leaseIDs(t, n2.pool), "c1", "the connection is listed again")
	_, err = n2.connect(t, key, "c3")
	require.ErrorIs(t, err, store.ErrConnectionLimit, "the connection counts again")

	_, err = store.New(n2.pool).APIKeyRevoke(context.Background(), key.ID)
	require.NoError(t, err)
	conn.waitClosed(t, 2*time.Second, "a later revocation closes it within 2 s")
}

// gatedSync holds the node's first LeaseSync until release is closed.
type gatedSync struct {
	hub.BeatStore
	entered, release, done chan struct{}
	releaseOnce            func()
	once                   sync.Once
}

func (g *gatedSync) LeaseSync(ctx context.Context, node string, live []store.LeaseAcquireParams) error {
	first := false
	g.once.Do(func() { first = true })
	if !first {
		return g.BeatStore.LeaseSync(ctx, node, live)
	}
	close(g.entered)
	<-g.release
	defer close(g.done)
	return g.BeatStore.LeaseSync(ctx, node, live)
}

// A connection that takes its lease while the node resyncs from an older
// snapshot of its leases loses it to the sync; the node notices and syncs
// again, so the lease is back by the next beat.
func TestLeaseAcquiredDuringSyncSurvives(t *testing.T) {
	t.Parallel()
	u := storetest.NewDB(t)
	g := &gatedSync{entered: make(chan struct{}), release: make(chan struct{}), done: make(chan struct{})}
	n := startNodeWith(t, u, hub.NodeConfig{ID: "node-1"}, func(st *store.Store) hub.BeatStore { g.BeatStore = st; return g })
	g.releaseOnce = sync.OnceFunc(func() { close(g.release) })
	t.Cleanup(g.releaseOnce) // before the node stops, should the test fail early
	key := newKey(t, n.pool, "acme", 5)
	<-g.entered // the first beat syncs, with no connections yet
	_, err := n.connect(t, key, "c1")
	require.NoError(t, err)
	g.releaseOnce()
	<-g.done
	require.Zero(t, n.node.WaitLeasesSynced(t, time.Second), "the gated sync, from before the connection")
	require.Equal(t, 1, n.node.WaitLeasesSynced(t, 2*time.Second), "the node noticed and synced again")
	require.Contains(t, leaseIDs(t, n.pool), "c1", "the lease the sync deleted is restored")
}

// A node whose resync keeps failing still closes the connections the
// cluster wants closed: the look for them no longer waits for a
// successful sync. The sync here fails as it would on a stalled server:
// it must delete a lease the node does not know (one left by a crashed
// process with its ID), and an open transaction holds that row locked
// past the beat's deadline.
func TestRevocationClosesWhileSyncFails(t *testing.T) {
	t.Parallel()
	cluster := storetest.NewCluster(t) // a transaction stays open: other tests' readers would stall
	pool := storetest.Pool(t, cluster.URL)
	ctx := context.Background()
	key := newKey(t, pool, "acme", 5)
	other := newKey(t, pool, "acme", 5)
	storetest.Exec(t, pool, `INSERT INTO hub.nodes (node) VALUES ('node-1')`,
		fmt.Sprintf(`INSERT INTO hub.leases (id, node, key_id, client, protocol) VALUES ('stale', 'node-1', %d, 'acme', 'ws')`, other.ID))
	tx, err := pool.Begin(ctx)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, `SELECT FROM hub.leases WHERE id = 'stale' FOR UPDATE`)
	require.NoError(t, err)

	n := startNodeWith(t, cluster.URL, hub.NodeConfig{ID: "node-1", BeatTimeout: 400 * time.Millisecond}, nil)
	t.Cleanup(func() { _ = tx.Rollback(ctx) }) // before the node stops: its stop deletes the locked lease
	conn, err := n.connect(t, key, "c1")
	require.NoError(t, err)
	_, err = store.New(pool).APIKeyRevoke(ctx, key.ID)
	require.NoError(t, err)
	code, why := conn.waitClosed(t, 5*time.Second, "the revoked connection is closed though every sync fails")
	require.Equal(t, 1008, code)
	require.Equal(t, "api key revoked", why)
	require.Contains(t, leaseIDs(t, pool), "stale", "no sync succeeded meanwhile")
}
