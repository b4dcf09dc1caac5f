package migrations_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/hubdev/hub/migrations"
	"github.com/hubdev/hub/store"
	"github.com/hubdev/hub/store/storetest"
)

// rawWrites are one writer's changes, in a time zone of its own, to a
// table with a timestamp of each kind; replayed, they make the same events.
var rawWrites = []string{
	`SET TimeZone = 'Asia/Shanghai'`,
	`INSERT INTO fills VALUES
	     (1, 'acme', '2026-02-15 18:30:05.5', '2026-02-15 10:30:05', ARRAY['2026-02-15 18:30:05+08', NULL]::timestamptz[], 1),
	     (2, 'acme', 'infinity', '0044-03-15 12:00:00 BC', NULL, 2),
	     (3, 'acme', '0001-01-01 05:00:00', NULL, ARRAY['1850-06-01 12:00:00']::timestamptz[], 3)`,
	`UPDATE fills SET at = at + interval '1 hour', a_b = a_b + 1 WHERE id < 3`,
	`INSERT INTO orders (order_id, client, account_id, matched_at, created_at) VALUES (900, 'acme', 'a1', '2026-02-15 18:30:05.123', '2026-02-15 18:00:00')`,
	`UPDATE orders SET matched_at = '2026-02-16 01:00:00' WHERE account_id = 'a1'`,
	`DELETE FROM fills`,
	`DELETE FROM orders WHERE account_id = 'a1'`, // not captured: orders' ops
	`RESET TimeZone`,
}

type logRow struct{ Payload, Old *string }

func readLog(t *testing.T, conn *pgx.Conn) []logRow {
	t.Helper()
	rows, err := conn.Query(context.Background(), `SELECT payload::text, old::text FROM hub.events ORDER BY xid, id`)
	require.NoError(t, err)
	log, err := pgx.CollectRows(rows, pgx.RowToStructByPos[logRow])
	require.NoError(t, err)
	return log
}

// Migration 8 leaves the rows captured before it as they are, its raw rows
// read as migration 7's capture wrote them, and reverting it turns its raw
// rows into that wire form in hub.events.
func TestRawCaptureAcrossVersions(t *testing.T) {
	t.Parallel()
	u := storetest.NewDB(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, u)
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close(ctx) })
	exec := func(sql ...string) {
		t.Helper()
		for _, q := range sql {
			_, err := conn.Exec(ctx, q)
			require.NoError(t, err, q)
		}
	}
	exec(`CREATE TABLE fills (id int PRIMARY KEY, client text, at timestamptz, at_ts timestamp, ats timestamptz[], a_b int)`,
		`SELECT hub.attach('fills', 'fills', 'client', NULL, '{INSERT,UPDATE,DELETE}')`)

	require.NoError(t, migrations.To(u, 7))
	exec(rawWrites...)
	at7 := readLog(t, conn)
	require.Len(t, at7, 10)
	require.Contains(t, *at7[0].Payload, `"at": "2026-02-15T10:30:05.5Z"`)

	require.NoError(t, migrations.To(u, 8))
	exec(rawWrites...)
	var raw int
	require.NoError(t, conn.QueryRow(ctx, `SELECT count(*) FROM hub.events WHERE raw`).Scan(&raw))
	require.Equal(t, len(at7), raw, "the second run is recorded raw")
	s := store.New(storetest.Pool(t, u))
	var events []store.Event
	// Other tests' open transactions on the shared cluster hold the
	// watermark back for a while (SPEC §2.3).
	require.Eventually(t, func() bool {
		events, _, err = s.EventsAfter(ctx, store.Position{}, 100)
		require.NoError(t, err)
		return len(events) == 2*len(at7)
	}, 30*time.Second, 5*time.Millisecond)
	for i, e := range events {
		want := at7[i%len(at7)]
		require.Equal(t, *want.Payload, string(e.Payload), "payload of event %d", i)
		if want.Old == nil {
			require.Nil(t, e.Old, "event %d", i)
		} else {
			require.Equal(t, *want.Old, string(e.Old), "old of event %d", i)
		}
	}

	require.NoError(t, migrations.To(u, 7))
	require.Equal(t, append(at7, at7...), readLog(t, conn), "raw rows converted in hub.events")
	require.NoError(t, migrations.Up(u))
}
