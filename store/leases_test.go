package store_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hubdev/hub/store"
	"github.com/hubdev/hub/store/storetest"
)

// leaseBundle is a database with two nodes, "a" and "b", each with a pool
// of its own as two hub processes would have.
type leaseBundle struct {
	ctx  context.Context
	pool *pgxpool.Pool // node a's
	a, b *store.Store
}

func leaseSetup(t *testing.T) leaseBundle {
	t.Helper()
	pool, u := storetest.NewPool(t)
	tb := leaseBundle{ctx: context.Background(), pool: pool, a: store.New(pool), b: store.New(storetest.Pool(t, u))}
	tb.beat(t, tb.a, "a")
	tb.beat(t, tb.b, "b")
	return tb
}

// beat heartbeats node through st and returns when its row was created.
func (tb leaseBundle) beat(t *testing.T, st *store.Store, node string) time.Time {
	t.Helper()
	row, err := st.NodeHeartbeat(tb.ctx, node)
	require.NoError(t, err)
	return row
}

// key creates an active client (unless it exists) and a key for it.
func (tb leaseBundle) key(t *testing.T, client string, maxConns int) store.APIKey {
	t.Helper()
	require.NoError(t, tb.a.ClientEnsure(tb.ctx, client))
	k, _, err := tb.a.APIKeyCreate(tb.ctx, store.APIKeyCreateParams{Client: client, MaxConnections: maxConns})
	require.NoError(t, err)
	return k
}

// age sets node's last heartbeat to d ago: a node that stopped beating,
// without waiting for it.
func (tb leaseBundle) age(t *testing.T, node string, d time.Duration) {
	t.Helper()
	_, err := tb.pool.Exec(tb.ctx, `UPDATE hub.nodes SET heartbeat_at = now() - $2::interval WHERE node = $1`, node, d)
	require.NoError(t, err)
}

// leaseCount counts a node's lease rows, live or not.
func (tb leaseBundle) leaseCount(t *testing.T, node string) int {
	t.Helper()
	var n int
	require.NoError(t, tb.pool.QueryRow(tb.ctx, `SELECT count(*) FROM hub.leases WHERE node = $1`, node).Scan(&n))
	return n
}

// requireCountsMatch checks the counters that LeaseAcquire reads against
// the lease rows they count.
func (tb leaseBundle) requireCountsMatch(t *testing.T) {
	t.Helper()
	q := func(sql string) map[string][2]int {
		rows, err := tb.pool.Query(tb.ctx, sql)
		require.NoError(t, err)
		m := map[string][2]int{}
		for rows.Next() {
			var (
				key         int64
				node        string
				total, eosp int
			)
			require.NoError(t, rows.Scan(&key, &node, &total, &eosp))
			require.GreaterOrEqual(t, eosp, 0)
			if total != 0 {
				m[fmt.Sprint(key, "/", node)] = [2]int{total, eosp}
			}
		}
		require.NoError(t, rows.Err())
		return m
	}
	want := q(`SELECT key_id, node, count(*), count(*) FILTER (WHERE protocol = 'eospark') FROM hub.leases GROUP BY 1, 2`)
	require.Equal(t, want, q(`SELECT key_id, node, total, eospark FROM hub.lease_counts`))
}

func leaseParams(id, node string, k store.APIKey, protocol string) store.LeaseAcquireParams {
	return store.LeaseAcquireParams{ID: id, Node: node, KeyID: k.ID, Client: k.Client, Protocol: protocol, RemoteAddr: "192.0.2.1:5000"}
}

// fill acquires n ws leases of k on node, named <prefix>0, <prefix>1, ….
func (tb leaseBundle) fill(t *testing.T, s *store.Store, node, prefix string, k store.APIKey, n int) {
	t.Helper()
	for i := range n {
		require.NoError(t, s.LeaseAcquire(tb.ctx, leaseParams(fmt.Sprint(prefix, i), node, k, store.ProtocolWS)))
	}
}

func TestLeaseAcquireLimitUnderConcurrency(t *testing.T) {
	t.Parallel()
	tb := leaseSetup(t)
	k := tb.key(t, "acme", 5)

	const tries = 20
	errs := make([]error, tries)
	var wg sync.WaitGroup
	for i := range tries {
		s, node := tb.a, "a"
		if i%2 == 1 {
			s, node = tb.b, "b"
		}
		wg.Go(func() {
			errs[i] = s.LeaseAcquire(tb.ctx, leaseParams(fmt.Sprint("c", i), node, k, store.ProtocolWS))
		})
	}
	wg.Wait()

	ok := 0
	for _, err := range errs {
		if err == nil {
			ok++
			continue
		}
		require.ErrorIs(t, err, store.ErrConnectionLimit)
	}
	require.Equal(t, 5, ok)
	counts, err := tb.a.LeaseCountByKey(tb.ctx, "acme")
	require.NoError(t, err)
	require.Equal(t, map[int64]int{k.ID: 5}, counts)
	tb.requireCountsMatch(t)
}

func TestLeaseDeadNodeStopsCounting(t *testing.T) {
	t.Parallel()
	tb := leaseSetup(t)
	k := tb.key(t, "acme", 5)
	tb.fill(t, tb.a, "a", "a", k, 5)
	require.ErrorIs(t, tb.b.LeaseAcquire(tb.ctx, leaseParams("b0", "b", k, store.ProtocolWS)), store.ErrConnectionLimit)

	tb.age(t, "a", store.NodeAliveFor+time.Second)
	require.NoError(t, tb.b.LeaseAcquire(tb.ctx, leaseParams("b0", "b", k, store.ProtocolWS)))
	list, err := tb.b.LeaseList(tb.ctx)
	require.NoError(t, err)
	require.Len(t, list, 1)
	require.Equal(t, "b0", list[0].ID)
	counts, err := tb.b.LeaseCountByClient(tb.ctx)
	require.NoError(t, err)
	require.Equal(t, map[string]int{"acme": 1}, counts)
	require.ErrorIs(t, tb.b.LeaseKick(tb.ctx, "a0"), store.ErrNotFound, "a dead node's connection is not listed, so not kickable")

	// A dead node is kept for a while, in case it was only cut off...
	tb.beat(t, tb.b, "b")
	require.Equal(t, 5, tb.leaseCount(t, "a"))
	// ...then forgotten, with its leases, by any node's heartbeat.
	tb.age(t, "a", 2*time.Minute)
	tb.beat(t, tb.b, "b")
	require.Equal(t, 0, tb.leaseCount(t, "a"))
	var nodes int
	require.NoError(t, tb.pool.QueryRow(tb.ctx, `SELECT count(*) FROM hub.nodes WHERE node = 'a'`).Scan(&nodes))
	require.Zero(t, nodes)
}

func TestLeaseDeadNodeCountsAgainAfterHeartbeat(t *testing.T) {
	t.Parallel()
	tb := leaseSetup(t)
	k := tb.key(t, "acme", 2)
	tb.fill(t, tb.a, "a", "a", k, 2)
	tb.age(t, "a", store.NodeAliveFor+time.Second)
	require.NoError(t, tb.b.LeaseAcquire(tb.ctx, leaseParams("b0", "b", k, store.ProtocolWS)))

	// Back from a short outage: its connections stayed open and count again.
	tb.beat(t, tb.a, "a")
	list, err := tb.a.LeaseList(tb.ctx)
	require.NoError(t, err)
	require.Len(t, list, 3)
	require.ErrorIs(t, tb.b.LeaseAcquire(tb.ctx, leaseParams("b1", "b", k, store.ProtocolWS)), store.ErrConnectionLimit)
}

// A node stalled past the cleanup age (a paused VM, SIGSTOP) is forgotten
// with its leases by another node's heartbeat; its own next heartbeat
// re-creates the row and must say so, whichever call re-created it.
func TestNodeHeartbeatReportsForgottenRow(t *testing.T) {
	t.Parallel()
	tb := leaseSetup(t)
	k := tb.key(t, "acme", 5)
	tb.fill(t, tb.a, "a", "a", k, 2)
	row := tb.beat(t, tb.a, "a")
	require.Equal(t, row, tb.beat(t, tb.a, "a"), "the same row from beat to beat")

	tb.age(t, "a", 2*time.Minute)
	tb.beat(t, tb.b, "b")
	require.Equal(t, 0, tb.leaseCount(t, "a"), "forgotten with its leases")
	again := tb.beat(t, tb.a, "a")
	require.NotEqual(t, row, again, "a re-created row is told apart")

	// A connection that arrives first re-creates the row instead.
	tb.age(t, "a", 2*time.Minute)
	tb.beat(t, tb.b, "b")
	require.NoError(t, tb.a.LeaseAcquire(tb.ctx, leaseParams("late", "a", k, store.ProtocolWS)))
	require.NotEqual(t, again, tb.beat(t, tb.a, "a"))
}

func TestNodeStopFreesSlotsAtOnce(t *testing.T) {
	t.Parallel()
	tb := leaseSetup(t)
	k := tb.key(t, "acme", 5)
	tb.fill(t, tb.a, "a", "a", k, 5)

	require.NoError(t, tb.a.NodeStop(tb.ctx, "a"))
	tb.fill(t, tb.b, "b", "b", k, 5)
	require.Equal(t, 0, tb.leaseCount(t, "a"))
}

func TestLeaseAcquireRegistersMissingNode(t *testing.T) {
	t.Parallel()
	tb := leaseSetup(t)
	k := tb.key(t, "acme", 5)
	require.NoError(t, tb.a.LeaseAcquire(tb.ctx, leaseParams("c0", "fresh", k, store.ProtocolSSE)))
	list, err := tb.a.LeaseList(tb.ctx)
	require.NoError(t, err)
	require.Len(t, list, 1)
	require.Equal(t, "fresh", list[0].Node)
}

func TestLeaseAcquireRefused(t *testing.T) {
	t.Parallel()
	tb := leaseSetup(t)
	revoked := tb.key(t, "acme", 1)
	_, err := tb.a.APIKeyRevoke(tb.ctx, revoked.ID)
	require.NoError(t, err)
	inactive := tb.key(t, "beta", 1)
	_, err = tb.a.ClientSetActive(tb.ctx, "beta", false)
	require.NoError(t, err)
	full := tb.key(t, "gamma", 1)
	tb.fill(t, tb.a, "a", "full", full, 1)

	mismatch := leaseParams("c3", "a", full, store.ProtocolWS)
	mismatch.Client = "acme"
	for name, tc := range map[string]struct {
		p    store.LeaseAcquireParams
		want error
	}{
		"revoked key":     {leaseParams("c0", "a", revoked, store.ProtocolWS), store.ErrKeyInvalid},
		"inactive client": {leaseParams("c1", "a", inactive, store.ProtocolEOSPark), store.ErrKeyInvalid},
		"unknown key":     {leaseParams("c2", "a", store.APIKey{ID: 999, Client: "acme"}, store.ProtocolSSE), store.ErrKeyInvalid},
		"client mismatch": {mismatch, store.ErrKeyInvalid},
		"at the limit":    {leaseParams("c4", "b", full, store.ProtocolSSE), store.ErrConnectionLimit},
		"id taken":        {leaseParams("full0", "a", tb.key(t, "gamma", 1), store.ProtocolWS), store.ErrExists},
	} {
		require.ErrorIs(t, tb.a.LeaseAcquire(tb.ctx, tc.p), tc.want, name)
	}
	require.Equal(t, 1, tb.leaseCount(t, "a"))
	tb.requireCountsMatch(t)
}

func TestLeaseAcquireEOSParkRepeat(t *testing.T) {
	t.Parallel()
	tb := leaseSetup(t)

	// At its limit too, but the repeat is what SPEC §5 answers first.
	one := tb.key(t, "acme", 1)
	require.NoError(t, tb.a.LeaseAcquire(tb.ctx, leaseParams("one0", "a", one, store.ProtocolEOSPark)))
	require.ErrorIs(t, tb.b.LeaseAcquire(tb.ctx, leaseParams("one1", "b", one, store.ProtocolEOSPark)), store.ErrRepeatConnection)
	require.ErrorIs(t, tb.b.LeaseAcquire(tb.ctx, leaseParams("one2", "b", one, store.ProtocolWS)), store.ErrConnectionLimit)

	// Other transports do not make a protocol B connection a repeat.
	three := tb.key(t, "acme", 3)
	require.NoError(t, tb.a.LeaseAcquire(tb.ctx, leaseParams("three0", "a", three, store.ProtocolWS)))
	require.NoError(t, tb.a.LeaseAcquire(tb.ctx, leaseParams("three1", "a", three, store.ProtocolEOSPark)))
	require.ErrorIs(t, tb.b.LeaseAcquire(tb.ctx, leaseParams("three2", "b", three, store.ProtocolEOSPark)), store.ErrRepeatConnection)

	// A protocol B connection on a dead node is no longer a repeat.
	tb.age(t, "a", store.NodeAliveFor+time.Second)
	require.NoError(t, tb.b.LeaseAcquire(tb.ctx, leaseParams("three3", "b", three, store.ProtocolEOSPark)))

	// Released, the slot is free for a new protocol B connection.
	require.NoError(t, tb.b.LeaseRelease(tb.ctx, "three3"))
	require.NoError(t, tb.b.LeaseAcquire(tb.ctx, leaseParams("three4", "b", three, store.ProtocolEOSPark)))
}

func TestLeaseCloseList(t *testing.T) {
	t.Parallel()
	tb := leaseSetup(t)
	revoked := tb.key(t, "acme", 5)
	kicked := tb.key(t, "acme", 5)
	inactive := tb.key(t, "beta", 5)
	tb.fill(t, tb.a, "a", "revoked", revoked, 1)
	tb.fill(t, tb.a, "a", "kicked", kicked, 2)
	tb.fill(t, tb.a, "a", "inactive", inactive, 1)
	tb.fill(t, tb.b, "b", "b-revoked", revoked, 1)

	list, err := tb.a.LeaseCloseList(tb.ctx, "a")
	require.NoError(t, err)
	require.Empty(t, list)

	_, err = tb.b.APIKeyRevoke(tb.ctx, revoked.ID)
	require.NoError(t, err)
	_, err = tb.b.ClientSetActive(tb.ctx, "beta", false)
	require.NoError(t, err)
	require.NoError(t, tb.b.LeaseKick(tb.ctx, "kicked1"))
	require.NoError(t, tb.b.LeaseKick(tb.ctx, "kicked1"), "a second kick changes nothing")
	require.ErrorIs(t, tb.b.LeaseKick(tb.ctx, "nope"), store.ErrNotFound)

	list, err = tb.a.LeaseCloseList(tb.ctx, "a")
	require.NoError(t, err)
	require.Equal(t, []store.LeaseClose{
		{ID: "inactive0", Reason: store.LeaseCloseClientDeactivated},
		{ID: "kicked1", Reason: store.LeaseCloseKicked},
		{ID: "revoked0", Reason: store.LeaseCloseKeyRevoked},
	}, list)
	list, err = tb.b.LeaseCloseList(tb.ctx, "b")
	require.NoError(t, err)
	require.Equal(t, []store.LeaseClose{{ID: "b-revoked0", Reason: store.LeaseCloseKeyRevoked}}, list)

	// Closed and released, a connection is off the list.
	require.NoError(t, tb.a.LeaseRelease(tb.ctx, "kicked1"))
	list, err = tb.a.LeaseCloseList(tb.ctx, "a")
	require.NoError(t, err)
	require.Len(t, list, 2)
}

func TestLeaseListAndChannels(t *testing.T) {
	t.Parallel()
	tb := leaseSetup(t)
	k := tb.key(t, "acme", 5)
	other := tb.key(t, "beta", 5)
	p := leaseParams("c0", "a", k, store.ProtocolWS)
	p.Channels = []string{"orders"}
	require.NoError(t, tb.a.LeaseAcquire(tb.ctx, p))
	tb.fill(t, tb.b, "b", "b", other, 2)

	require.NoError(t, tb.a.LeaseUpdateChannels(tb.ctx, "c0", []string{"orders", "scores"}))
	list, err := tb.b.LeaseList(tb.ctx)
	require.NoError(t, err)
	require.Len(t, list, 3)
	c0 := list[0]
	require.WithinDuration(t, time.Now(), c0.ConnectedAt, time.Minute)
	c0.ConnectedAt = time.Time{}
	require.Equal(t, store.Lease{ID: "c0", Node: "a", Client: "acme", KeyID: k.ID, Protocol: "ws",
		RemoteAddr: "192.0.2.1:5000", Channels: []string{"orders", "scores"}}, c0)
	require.Equal(t, []string{}, list[1].Channels)

	byClient, err := tb.a.LeaseCountByClient(tb.ctx)
	require.NoError(t, err)
	require.Equal(t, map[string]int{"acme": 1, "beta": 2}, byClient)
	byKey, err := tb.a.LeaseCountByKey(tb.ctx, "beta")
	require.NoError(t, err)
	require.Equal(t, map[int64]int{other.ID: 2}, byKey)

	require.NoError(t, tb.a.LeaseRelease(tb.ctx, "c0"))
	require.NoError(t, tb.a.LeaseRelease(tb.ctx, "c0"), "releasing twice is harmless")
	require.ErrorIs(t, tb.a.LeaseUpdateChannels(tb.ctx, "c0", nil), store.ErrNotFound)
	require.ErrorIs(t, tb.a.LeaseKick(tb.ctx, "c0"), store.ErrNotFound)
}

func TestLeaseSync(t *testing.T) {
	t.Parallel()
	tb := leaseSetup(t)
	k := tb.key(t, "acme", 2)
	tb.fill(t, tb.a, "a", "c", k, 2) // c0, c1

	// c0 was closed while its release could not reach the database, c2
	// and c3 opened meanwhile on the node's own count: the limit is not
	// checked again for connections that are open already.
	live := []store.LeaseAcquireParams{
		leaseParams("c1", "a", k, store.ProtocolWS),
		leaseParams("c2", "a", k, store.ProtocolEOSPark),
		leaseParams("c3", "ignored", k, store.ProtocolSSE),
	}
	require.NoError(t, tb.a.LeaseSync(tb.ctx, "a", live))
	ids := func() []string {
		list, err := tb.a.LeaseList(tb.ctx)
		require.NoError(t, err)
		var ids []string
		for _, l := range list {
			require.Equal(t, "a", l.Node)
			ids = append(ids, l.ID)
		}
		return ids
	}
	require.ElementsMatch(t, []string{"c1", "c2", "c3"}, ids())

	// Forgotten by the cluster meanwhile: the node and its leases come back.
	require.NoError(t, tb.b.NodeStop(tb.ctx, "a"))
	require.NoError(t, tb.a.LeaseSync(tb.ctx, "a", live))
	require.ElementsMatch(t, []string{"c1", "c2", "c3"}, ids())

	require.NoError(t, tb.a.LeaseSync(tb.ctx, "a", nil))
	require.Empty(t, ids())
}

// TestLeaseCountsUnderChurn acquires and releases on two nodes at once:
// the limit holds and the counters end equal to the leases.
func TestLeaseCountsUnderChurn(t *testing.T) {
	t.Parallel()
	tb := leaseSetup(t)
	k := tb.key(t, "acme", 5)
	var wg sync.WaitGroup
	for w := range 8 {
		s, node := tb.a, "a"
		if w%2 == 1 {
			s, node = tb.b, "b"
		}
		wg.Go(func() {
			for i := range 25 {
				id := fmt.Sprint("w", w, "-", i)
				err := s.LeaseAcquire(tb.ctx, leaseParams(id, node, k, store.ProtocolWS))
				if err != nil {
					assert.ErrorIs(t, err, store.ErrConnectionLimit) // not require: another goroutine
					continue
				}
				if i%3 != 0 {
					assert.NoError(t, s.LeaseRelease(tb.ctx, id))
				}
			}
		})
	}
	wg.Wait()
	counts, err := tb.a.LeaseCountByKey(tb.ctx, "acme")
	require.NoError(t, err)
	require.LessOrEqual(t, counts[k.ID], 5)
	tb.requireCountsMatch(t)
}
