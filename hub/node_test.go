package hub_test

import (
	"context"
	"fmt"
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
	pool, err := store.Connect(context.Background(), u)
	require.NoError(t, err)
	st := store.New(pool)
	n := &testNode{pool: pool, hub: hub.New(st, store.Position{}, hub.Config{}), done: make(chan error, 1)}
	n.node = hub.NewNode(st, n.hub, hub.NodeConfig{ID: id, Beat: 100 * time.Millisecond})
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
	require.Eventually(t, func() bool { code, _ := conn.closed(); return code != 0 }, 2*time.Second, 10*time.Millisecond,
		"revoking on node 1 closes the connection on node 2 within 2 s")
	code, why := conn.closed()
	require.Equal(t, 1008, code)
	require.Equal(t, "api key revoked", why)

	_, err = store.New(n1.pool).ClientSetActive(context.Background(), "acme", false)
	require.NoError(t, err)
	require.Eventually(t, func() bool { code, _ := bystander.closed(); return code != 0 }, 2*time.Second, 10*time.Millisecond)
	_, why = bystander.closed()
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
