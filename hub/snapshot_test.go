package hub_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
	"golang.org/x/sync/errgroup"

	"github.com/hubdev/hub/hub"
	"github.com/hubdev/hub/hub/wire"
	"github.com/hubdev/hub/store"
)

// frameConn records every frame in the order it was sent, decoded.
type frameConn struct {
	sess   *hub.Session
	mu     sync.Mutex
	frames []snapFrame
	code   int
	why    string
	more   chan struct{}
}

// snapFrame is one protocol A frame as the snapshot tests read it.
type snapFrame struct {
	Type    string
	ID      string
	Channel string
	Event   string
	Payload map[string]any
	Message string
}

func newFrameConn() *frameConn { return &frameConn{more: make(chan struct{})} }

func (c *frameConn) Send(frames ...[]byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, raw := range frames {
		var f snapFrame
		if err := json.Unmarshal(raw, &f); err != nil {
			panic(err)
		}
		c.frames = append(c.frames, f)
	}
	close(c.more)
	c.more = make(chan struct{})
	go c.sess.Sent(len(frames))
}

func (c *frameConn) Close(cl wire.Close) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.code, c.why = cl.Code, cl.Reason
	go c.sess.Gone()
	close(c.more)
	c.more = make(chan struct{})
}

// waitFor returns the frames once ok holds for them; it fails the test
// after within, or when the connection was closed.
func (c *frameConn) waitFor(t *testing.T, within time.Duration, what string, ok func([]snapFrame) bool) []snapFrame {
	t.Helper()
	timeout := time.After(within)
	for {
		c.mu.Lock()
		frames, code, why, more := append([]snapFrame(nil), c.frames...), c.code, c.why, c.more
		c.mu.Unlock()
		if ok(frames) {
			return frames
		}
		if code != 0 {
			t.Fatalf("closed %d %q while waiting for %s", code, why, what)
		}
		select {
		case <-more:
		case <-timeout:
			t.Fatalf("no %s within %s; %d frames", what, within, len(frames))
		}
	}
}

// snapshotEnd returns the index of snapshot_end, or -1.
func snapshotEnd(frames []snapFrame) int {
	for i, f := range frames {
		if f.Type == "snapshot_end" {
			return i
		}
	}
	return -1
}

func connectSnapshot(t *testing.T, h *hub.Hub, client string, since *store.Position) *frameConn {
	t.Helper()
	c := newFrameConn()
	c.sess = h.Connect(hub.ConnectParams{Conn: c, Protocol: hub.ProtocolA, Credits: 16})
	t.Cleanup(c.sess.Gone)
	_, err := c.sess.Subscribe(context.Background(), hub.Subscription{
		Client: client, Channels: []string{"orders"}, Since: since, Snapshot: since == nil,
		Reply: func(bool) []byte { return []byte(`{"type":"subscribed"}`) },
	})
	require.NoError(t, err)
	return c
}

// orderState is a subscriber's view of the orders it may see: the
// version (matched_stake) of each, by order_id.
type orderState map[int64]int64

func rowOf(t *testing.T, p map[string]any) (id, version int64) {
	t.Helper()
	require.Equal(t, "acme", p["client"], "a row of another client")
	return int64(p["orderId"].(float64)), int64(p["matchedStake"].(float64))
}

// apply builds a subscriber's state from its frames: the snapshot's rows,
// then each change, which must be the next version of its row (none
// repeated, none skipped). after lists the broadcasts after snapshot_end.
func apply(t *testing.T, frames []snapFrame) (state orderState, end string, after []string) {
	t.Helper()
	state = orderState{}
	require.Equal(t, "subscribed", frames[0].Type)
	i := 1
	for ; frames[i].Type == "snapshot"; i++ {
		id, v := rowOf(t, frames[i].Payload)
		_, dup := state[id]
		require.False(t, dup, "row %d twice in the snapshot", id)
		state[id] = v
	}
	ended := false
	for ; i < len(frames); i++ {
		f := frames[i]
		if f.Type == "snapshot_end" {
			end, ended = f.ID, true
			continue
		}
		require.Equal(t, "broadcast", f.Type, "frame %d", i)
		if ended {
			after = append(after, f.ID)
		}
		id, v := rowOf(t, f.Payload)
		prev, known := state[id]
		switch f.Event {
		case "INSERT":
			require.False(t, known, "insert of row %d, which the subscriber has", id)
		case "UPDATE":
			require.True(t, known, "update of row %d, which the subscriber lacks", id)
			require.Equal(t, prev+1, v, "row %d: version %d after %d (a change repeated or lost)", id, v, prev)
		}
		state[id] = v
	}
	require.True(t, ended, "no snapshot_end")
	return state, end, after
}

func tableState(t *testing.T, pool *pgxpool.Pool) orderState {
	t.Helper()
	rows, err := pool.Query(context.Background(), `SELECT order_id, matched_stake::bigint FROM orders WHERE client = 'acme'`)
	require.NoError(t, err)
	state := orderState{}
	for rows.Next() {
		var id, v int64
		require.NoError(t, rows.Scan(&id, &v))
		state[id] = v
	}
	require.NoError(t, rows.Err())
	return state
}

func TestSnapshotThenChanges(t *testing.T) {
	b := setupHub(t, hub.Config{})
	ctx := context.Background()
	_, err := b.pool.Exec(ctx, `INSERT INTO orders (client, account_id, matched_stake)
		SELECT c, 'A', 0 FROM unnest(ARRAY['acme', 'acme', 'acme', 'beta', '']) c`)
	require.NoError(t, err)
	c := connectSnapshot(t, b.hub, "acme", nil)
	frames := c.waitFor(t, 30*time.Second, "snapshot_end", func(f []snapFrame) bool { return snapshotEnd(f) >= 0 })
	require.Equal(t, 5, len(frames), "subscribed, acme's 3 rows (not beta's, not the one without a tenant), snapshot_end")
	_, err = b.pool.Exec(ctx, `UPDATE orders SET matched_stake = 1 WHERE client = 'acme' AND order_id = (SELECT min(order_id) FROM orders)`)
	require.NoError(t, err)
	frames = c.waitFor(t, 30*time.Second, "the change", func(f []snapFrame) bool { return len(f) == 6 })
	state, _, _ := apply(t, frames)
	require.Equal(t, tableState(t, b.pool), state)
}

func TestSnapshotTooLarge(t *testing.T) {
	b := setupHub(t, hub.Config{SnapshotMaxRows: 2})
	_, err := b.pool.Exec(context.Background(), `INSERT INTO orders (client, account_id) VALUES ('acme', 'A'), ('acme', 'B'), ('acme', 'C')`)
	require.NoError(t, err)
	c := newFrameConn()
	c.sess = b.hub.Connect(hub.ConnectParams{Conn: c, Protocol: hub.ProtocolA, Credits: 16})
	t.Cleanup(c.sess.Gone)
	_, err = c.sess.Subscribe(context.Background(), hub.Subscription{Client: "acme", Channels: []string{"orders"}, Snapshot: true})
	require.ErrorIs(t, err, hub.ErrSnapshotTooLarge)
	require.False(t, c.sess.Subscribed(), "a refused subscribe changes nothing")
}

// TestSnapshotSeamProperty: writers run random transactions over a few
// rows of two clients, holding them open across statements, while
// subscribers connect with a snapshot at random moments. At the quiet
// point after the writes, every subscriber's state (its snapshot's rows
// and the changes after them) equals the table, no change reached it
// twice or was skipped (each update raises its row's version by one), and
// a resume from its snapshot_end's id brings exactly the broadcasts it
// got after snapshot_end.
func TestSnapshotSeamProperty(t *testing.T) {
	b := setupPrivateHub(t, hub.Config{})
	ctx := context.Background()
	_, err := b.pool.Exec(ctx, `INSERT INTO orders (client, account_id, matched_stake)
		SELECT c, 'A', 0 FROM unnest(ARRAY['acme', 'acme', 'acme', 'acme', 'beta', 'beta']) c`)
	require.NoError(t, err)
	var ids []int64
	require.NoError(t, b.pool.QueryRow(ctx, `SELECT array_agg(order_id ORDER BY order_id) FROM orders`).Scan(&ids))

	const writers, txs, subscribers = 6, 40, 8
	g, gctx := errgroup.WithContext(ctx)
	for w := range writers {
		g.Go(func() error {
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			for range txs {
				err := randomVersionTx(gctx, b.pool, rng, ids)
				if pe, ok := errors.AsType[*pgconn.PgError](err); ok && pe.Code == "40P01" {
					continue // two writers took the same rows in turn: one rolls back
				}
				if err != nil {
					return err
				}
			}
			return nil
		})
	}
	conns := make([]*frameConn, subscribers)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range conns {
		time.Sleep(time.Duration(rng.IntN(40)) * time.Millisecond) // spreads the snapshots over the writes; not synchronisation
		conns[i] = connectSnapshot(t, b.hub, "acme", nil)
	}
	require.NoError(t, g.Wait())

	want := tableState(t, b.pool)
	for i, c := range conns {
		frames := c.waitFor(t, 60*time.Second, fmt.Sprintf("subscriber %d's state equal to the table", i), func(f []snapFrame) bool {
			if snapshotEnd(f) < 0 {
				return false
			}
			state := orderState{}
			for _, fr := range f {
				if fr.Type == "snapshot" || fr.Type == "broadcast" {
					id, v := int64(fr.Payload["orderId"].(float64)), int64(fr.Payload["matchedStake"].(float64))
					state[id] = v
				}
			}
			return fmt.Sprint(state) == fmt.Sprint(want)
		})
		state, end, after := apply(t, frames)
		require.Equal(t, want, state, "subscriber %d", i)

		pos, err := store.ParsePosition(end)
		require.NoError(t, err)
		resumed := connectSnapshot(t, b.hub, "acme", &pos)
		got := resumed.waitFor(t, 60*time.Second, "the resume's broadcasts", func(f []snapFrame) bool { return len(f) >= 1+len(after) })
		var ids []string
		for _, f := range got[1:] {
			ids = append(ids, f.ID)
		}
		require.Equal(t, after, ids, "subscriber %d: a resume from snapshot_end brings what came after it", i)
	}
}

// randomVersionTx updates one or two random rows (raising their version) and
// sometimes inserts one, pausing between statements; one in ten rolls
// back.
func randomVersionTx(ctx context.Context, pool *pgxpool.Pool, rng *rand.Rand, ids []int64) error {
	tx, err := pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx) //nolint:errcheck // after a commit: a no-op
	for range 1 + rng.IntN(2) {
		id := ids[rng.IntN(len(ids))]
		if _, err := tx.Exec(ctx, `UPDATE orders SET matched_stake = matched_stake + 1 WHERE order_id = $1`, id); err != nil {
			return err
		}
		time.Sleep(time.Duration(rng.IntN(3000)) * time.Microsecond) // holds the transaction open across snapshots; not synchronisation
	}
	if rng.IntN(8) == 0 {
		if _, err := tx.Exec(ctx, `INSERT INTO orders (client, account_id, matched_stake) VALUES ('acme', 'N', 0)`); err != nil {
			return err
		}
	}
	if rng.IntN(10) == 0 {
		return tx.Rollback(ctx)
	}
	return tx.Commit(ctx)
}
