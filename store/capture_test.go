package store_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/hubdev/hub/store"
	"github.com/hubdev/hub/store/storetest"
)

type captureBundle struct {
	pool  *pgxpool.Pool
	store *store.Store
}

func setupCapture(t *testing.T) captureBundle {
	t.Helper()
	t.Parallel()
	pool, _ := storetest.NewPool(t)
	return captureBundle{pool: pool, store: store.New(pool)}
}

// exec runs SQL on one connection, so that session settings such as
// TimeZone apply to the statements after them.
func (b captureBundle) exec(t *testing.T, sql ...string) {
	t.Helper()
	ctx := context.Background()
	conn, err := b.pool.Acquire(ctx)
	require.NoError(t, err)
	defer conn.Release()
	for _, q := range sql {
		_, err := conn.Exec(ctx, q)
		require.NoError(t, err, q)
	}
	_, err = conn.Exec(ctx, "RESET ALL")
	require.NoError(t, err)
}

// all reads the whole log, page by page, once nothing is held back: other
// tests' open transactions on the shared cluster hold the watermark back
// for a moment (SPEC §2.3).
func (b captureBundle) all(t *testing.T) []store.Event {
	t.Helper()
	b.settle(t)
	var out []store.Event
	var pos store.Position
	for {
		page, _, err := b.store.EventsAfter(context.Background(), pos, 1000)
		require.NoError(t, err)
		if len(page) == 0 {
			return out
		}
		out = append(out, page...)
		pos = page[len(page)-1].Pos
	}
}

// settle waits until no committed event is held back by another test's
// open transaction.
func (b captureBundle) settle(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(30 * time.Second)
	for {
		backlog, err := b.store.BacklogCheck(ctx)
		require.NoError(t, err)
		if !backlog.HeldBack {
			break
		}
		require.True(t, time.Now().Before(deadline), "events held back for 30s")
		time.Sleep(5 * time.Millisecond) // polling a condition the database holds
	}
}

func object(t *testing.T, raw json.RawMessage) map[string]any {
	t.Helper()
	if raw == nil {
		return nil
	}
	var m map[string]any
	require.NoError(t, json.Unmarshal(raw, &m))
	return m
}

func keys(m map[string]any) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}

func TestCaptureTables(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		setup       []string // not captured
		insert      string   // captured when wantInsert
		wantInsert  bool
		update      string
		wantPayload map[string]any // a subset of the UPDATE's payload
		wantOld     map[string]any // exactly the UPDATE's old
		noop        string
		client      string
		subject     string
	}{{
		name:        "orders",
		insert:      `INSERT INTO orders (order_id, client, account_id, fixture_id, outcome_id, exchange, exchange_order_id, order_status, matched_status, order_cents, order_stake, matched_stake) VALUES (123, 'acme', 'acc-1', 'id1000000861624412', 161, 'polymarket', '0x1a2b3c', 'PLACED', 'NOT_MATCHED', 0.45, 100.0, 0)`,
		wantInsert:  true,
		update:      `UPDATE orders SET order_status = 'FILLED', matched_status = 'FULLY_MATCHED', matched_stake = 100.0, matched_at = '2026-02-15T10:30:05Z' WHERE order_id = 123`,
		wantPayload: map[string]any{"orderId": 123.0, "fixtureId": "id1000000861624412", "outcomeId": 161.0, "exchangeOrderId": "0x1a2b3c", "orderStatus": "FILLED", "matchedStatus": "FULLY_MATCHED", "orderCents": 0.45, "orderStake": 100.0, "matchedStake": 100.0, "matchedAt": "2026-02-15T10:30:05Z"},
		wantOld:     map[string]any{"orderStatus": "PLACED", "matchedStatus": "NOT_MATCHED", "matchedStake": 0.0, "matchedAt": nil},
		noop:        `UPDATE orders SET order_status = 'FILLED' WHERE order_id = 123`,
		client:      "acme",
		subject:     "acc-1",
	}, {
		name:        "bets",
		insert:      `INSERT INTO bets (bet_id, order_id, client, account_id, bookmaker, placed_price, placed_stake, bet_status, sent_data, received_data, placed_at) VALUES (456, 123, 'acme', 'acc-1', 'vertex', 1.808, 100.0, 'placed', '{"requestId":"a1b2c3d4","side":"1","amount":100.0}', '{"betId":"789","status":"U","snake_key":1}', '2026-02-15T10:30:08Z')`,
		wantInsert:  true,
		update:      `UPDATE bets SET bet_status = 'settled', received_data = '{"betId":"789","status":"S","snake_key":2}' WHERE bet_id = 456`,
		wantPayload: map[string]any{"betId": 456.0, "orderId": 123.0, "placedPrice": 1.808, "betStatus": "settled", "sentData": map[string]any{"requestId": "a1b2c3d4", "side": "1", "amount": 100.0}, "receivedData": map[string]any{"betId": "789", "status": "S", "snake_key": 2.0}, "placedAt": "2026-02-15T10:30:08Z"},
		wantOld:     map[string]any{"betStatus": "placed", "receivedData": map[string]any{"betId": "789", "status": "U", "snake_key": 1.0}},
		noop:        `UPDATE bets SET bet_status = 'settled' WHERE bet_id = 456`,
		client:      "acme",
		subject:     "acc-1",
	}, {
		name:        "accounts",
		insert:      `INSERT INTO accounts (account_id, client, venue, balance, currency, status) VALUES ('acc-1', 'acme', 'betfair', 1000.50, 'USD', 'active')`,
		update:      `UPDATE accounts SET balance = 900.25, updated_at = '2026-02-15 18:30:05.5+08' WHERE account_id = 'acc-1'`,
		wantPayload: map[string]any{"accountId": "acc-1", "client": "acme", "venue": "betfair", "balance": 900.25, "currency": "USD", "status": "active", "updatedAt": "2026-02-15T10:30:05.5Z"},
		wantOld:     map[string]any{"balance": 1000.50, "updatedAt": nil},
		noop:        `UPDATE accounts SET balance = 900.25 WHERE account_id = 'acc-1'`,
		client:      "acme",
		subject:     "acc-1",
	}, {
		name:        "scores",
		insert:      `INSERT INTO scores (fixture_id, live, status_id, current_period, current_minute, scores) VALUES ('id1000000861624412', true, 1, '上半场', 30, '{"home":1,"away":0,"period1Home":1}')`,
		update:      `UPDATE scores SET current_period = '下半场', current_minute = 67, scores = '{"home":2,"away":1,"period1Home":1,"period1Away":0}' WHERE fixture_id = 'id1000000861624412'`,
		wantPayload: map[string]any{"fixtureId": "id1000000861624412", "live": true, "statusId": 1.0, "currentPeriod": "下半场", "currentMinute": 67.0, "scores": map[string]any{"home": 2.0, "away": 1.0, "period1Home": 1.0, "period1Away": 0.0}},
		wantOld:     map[string]any{"currentPeriod": "上半场", "currentMinute": 30.0, "scores": map[string]any{"home": 1.0, "away": 0.0, "period1Home": 1.0}},
		noop:        `UPDATE scores SET live = true`,
		subject:     "id1000000861624412",
	}, {
		name:        "emergency",
		setup:       []string{`INSERT INTO emergency (id) VALUES (1) ON CONFLICT DO NOTHING`},
		update:      `UPDATE emergency SET emergency = true, reason = '手动触发', triggered_at = '2026-02-15T10:30:00Z'`,
		wantPayload: map[string]any{"id": 1.0, "emergency": true, "reason": "手动触发", "triggeredAt": "2026-02-15T10:30:00Z"},
		wantOld:     map[string]any{"emergency": false, "reason": nil, "triggeredAt": nil},
		noop:        `UPDATE emergency SET emergency = true WHERE id = 1`,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := setupCapture(t)
			// A writer in another time zone still gets UTC with Z.
			b.exec(t, append(append([]string{`SET TimeZone = 'Asia/Shanghai'`}, tt.setup...), tt.insert, tt.update, tt.noop)...)
			if tt.insert == "" {
				b.exec(t, tt.update, tt.noop)
			}
			events := b.all(t)
			want := 1
			if tt.wantInsert {
				want = 2
			}
			require.Len(t, events, want, "a no-op UPDATE records nothing; default ops per table")
			for _, e := range events {
				require.Equal(t, tt.name, e.Channel)
				require.Equal(t, tt.client, e.Client)
				require.Equal(t, tt.subject, e.Subject)
			}
			if tt.wantInsert {
				require.Equal(t, "INSERT", events[0].Op)
				require.Nil(t, events[0].Old, "an INSERT has no old")
			}
			up := events[len(events)-1]
			require.Equal(t, "UPDATE", up.Op)
			payload := object(t, up.Payload)
			for k, v := range tt.wantPayload {
				require.Equal(t, v, payload[k], "payload key %s", k)
			}
			for _, k := range keys(payload) {
				require.NotContains(t, k, "_", "payload keys are lowerCamelCase")
			}
			require.Equal(t, tt.wantOld, object(t, up.Old), "old holds exactly the changed columns")
		})
	}
}

func TestCaptureDefaultsSkipUncapturedOps(t *testing.T) {
	b := setupCapture(t)
	b.exec(t,
		`INSERT INTO scores (fixture_id, live) VALUES ('f1', false)`,
		`INSERT INTO accounts (account_id, client) VALUES ('a1', 'acme')`,
		`DELETE FROM orders`,
	)
	require.Empty(t, b.all(t))
}

func TestCaptureLargeRow(t *testing.T) {
	b := setupCapture(t)
	big := strings.Repeat("x", 1<<20)
	_, err := b.pool.Exec(context.Background(),
		`INSERT INTO bets (client, account_id, sent_data) VALUES ('acme', 'a1', jsonb_build_object('blob', $1::text))`, big)
	require.NoError(t, err, "the writer's transaction succeeds")
	events := b.all(t)
	require.Len(t, events, 1)
	var payload struct {
		SentData struct{ Blob string } `json:"sentData"`
	}
	require.NoError(t, json.Unmarshal(events[0].Payload, &payload))
	require.Equal(t, big, payload.SentData.Blob)
}

func TestCaptureLargeTransaction(t *testing.T) {
	b := setupCapture(t)
	b.exec(t,
		`INSERT INTO accounts (account_id, client, balance) SELECT 'a' || g, 'acme', g FROM generate_series(1, 10000) g`,
		`UPDATE accounts SET balance = balance + 1`,
	)
	events := b.all(t)
	require.Len(t, events, 10000)
	seen := map[string]bool{}
	for i, e := range events {
		if i > 0 {
			require.True(t, events[i-1].Pos.Less(e.Pos), "position order")
		}
		seen[e.Subject] = true
	}
	require.Len(t, seen, 10000)
}

func TestCaptureTenantless(t *testing.T) {
	b := setupCapture(t)
	b.exec(t,
		`CREATE TABLE notes (id int PRIMARY KEY, owner text, body text)`,
		`SELECT hub.attach('notes', 'notes', 'owner', NULL, '{INSERT,DELETE}')`,
		`INSERT INTO notes VALUES (1, NULL, 'nobody''s')`,
	)
	require.Empty(t, b.all(t), "a tenant row without a tenant is delivered to no one")
}

// An empty tenant value is nobody's, as NULL is (SPEC §2.2): were it
// recorded, the log would hold an event that looks global.
func TestCaptureEmptyTenant(t *testing.T) {
	b := setupCapture(t)
	b.exec(t,
		`INSERT INTO orders (client, account_id) VALUES ('', 'a1')`,
		`INSERT INTO bets (client, account_id) VALUES ('', 'a1')`,
		`INSERT INTO accounts (account_id, client) VALUES ('a1', '')`,
		`UPDATE accounts SET balance = 1`,
		`UPDATE orders SET order_status = 'FILLED'`,
		`CREATE TABLE notes (id int PRIMARY KEY, owner text, body text)`,
		`SELECT hub.attach('notes', 'notes', 'owner', NULL, '{INSERT,UPDATE,DELETE}')`,
		`INSERT INTO notes VALUES (1, '', 'nobody''s')`,
		`UPDATE notes SET body = 'still nobody''s'`,
		`DELETE FROM notes`,
	)
	require.Empty(t, b.all(t), "a tenant row with an empty tenant is recorded for no one")
}

func TestAttachDetach(t *testing.T) {
	b := setupCapture(t)
	b.exec(t,
		`CREATE TABLE public.fills (fill_id bigint PRIMARY KEY, tenant text, _venue_name_ text, period1_home int, at timestamp)`,
		`SELECT hub.attach('public.fills', 'fills', 'tenant', '_venue_name_', '{INSERT,UPDATE,DELETE}')`,
		`INSERT INTO fills VALUES (1, 'acme', 'v1', 1, '2026-01-02 03:04:05')`,
		`UPDATE fills SET period1_home = 2`,
		`DELETE FROM fills`,
	)
	var ch struct {
		Tbl, Tenant, Subject string
		Ops                  []string
	}
	require.NoError(t, b.pool.QueryRow(context.Background(),
		`SELECT tbl::text, tenant_column, subject_column, ops FROM hub.channels WHERE channel = 'fills'`).
		Scan(&ch.Tbl, &ch.Tenant, &ch.Subject, &ch.Ops))
	require.Equal(t, "fills", ch.Tbl)
	require.Equal(t, []string{"DELETE", "INSERT", "UPDATE"}, ch.Ops)

	events := b.all(t)
	require.Len(t, events, 3)
	require.Equal(t, []string{"INSERT", "UPDATE", "DELETE"}, []string{events[0].Op, events[1].Op, events[2].Op})
	require.Equal(t, map[string]any{"fillId": 1.0, "tenant": "acme", "venueName": "v1", "period1Home": 1.0, "at": "2026-01-02T03:04:05Z"},
		object(t, events[0].Payload))
	require.Equal(t, map[string]any{"period1Home": 1.0}, object(t, events[1].Old))
	require.Equal(t, "acme", events[2].Client)
	require.Equal(t, "v1", events[2].Subject)
	require.Nil(t, events[2].Old, "a DELETE carries the deleted row and no old")
	require.Equal(t, 2.0, object(t, events[2].Payload)["period1Home"])

	b.exec(t, `SELECT hub.detach('public.fills')`, `INSERT INTO fills VALUES (2, 'acme', 'v1', 1, NULL)`)
	require.Len(t, b.all(t), 3, "nothing captured after detach")
	var n int
	require.NoError(t, b.pool.QueryRow(context.Background(), `SELECT count(*) FROM hub.channels WHERE channel = 'fills'`).Scan(&n))
	require.Zero(t, n)
}

func TestAttachRefusesBadArguments(t *testing.T) {
	b := setupCapture(t)
	for _, q := range []string{
		`SELECT hub.attach('orders', 'orders2', 'nosuchcolumn', NULL, '{INSERT}')`,
		`SELECT hub.attach('orders', 'orders2', 'client', NULL, '{TRUNCATE}')`,
		`SELECT hub.attach('orders', 'orders2', 'client', NULL, '{}')`,
		`SELECT hub.attach('bets', 'orders', 'client', NULL, '{INSERT}')`,
		`SELECT hub.attach('orders', 'bad name!', 'client', NULL, '{INSERT}')`,
	} {
		_, err := b.pool.Exec(context.Background(), q)
		require.Error(t, err, q)
	}
	// Nothing changed: orders still broadcasts as before.
	b.exec(t, `INSERT INTO orders (client) VALUES ('acme')`)
	events := b.all(t)
	require.Len(t, events, 1)
	require.Equal(t, "orders", events[0].Channel)
}

func TestCamel(t *testing.T) {
	b := setupCapture(t)
	for in, want := range map[string]string{
		"exchange_order_id": "exchangeOrderId",
		"period1_home":      "period1Home",
		"_leading":          "leading",
		"trailing_":         "trailing",
		"__both__sides__":   "bothSides",
		"id":                "id",
	} {
		var got string
		require.NoError(t, b.pool.QueryRow(context.Background(), `SELECT hub.camel($1)`, in).Scan(&got))
		require.Equal(t, want, got, in)
	}
}

// Columns added after the attach are captured through the slow path with
// the same wire form; infinity stays infinity.
func TestCaptureColumnAddedLater(t *testing.T) {
	b := setupCapture(t)
	b.exec(t,
		`ALTER TABLE accounts ADD COLUMN audited_at timestamptz, ADD COLUMN risk_level int`,
		`INSERT INTO accounts (account_id, client) VALUES ('a1', 'acme')`,
		`SET TimeZone = 'America/New_York'`,
		`UPDATE accounts SET audited_at = '2026-03-01 12:00:00.5+01', risk_level = 3, updated_at = 'infinity'`,
	)
	events := b.all(t)
	require.Len(t, events, 1)
	payload := object(t, events[0].Payload)
	require.Equal(t, "2026-03-01T11:00:00.5Z", payload["auditedAt"])
	require.Equal(t, 3.0, payload["riskLevel"])
	require.Equal(t, "infinity", payload["updatedAt"])
	require.Equal(t, map[string]any{"auditedAt": nil, "riskLevel": nil, "updatedAt": nil}, object(t, events[0].Old))
}

// An application role needs privileges on its own tables only, none on
// schema hub: the capture runs as its owner (issue 12 §6). Without that,
// the writer's INSERT failed for want of INSERT on hub.events.
func TestCaptureByUnprivilegedWriter(t *testing.T) {
	b := setupCapture(t)
	ctx := context.Background()
	role := fmt.Sprintf("writer_%d_%d", os.Getpid(), time.Now().UnixNano())
	b.exec(t,
		`CREATE ROLE `+role+` LOGIN`,
		`GRANT SELECT, INSERT, UPDATE, DELETE ON orders, bets, accounts, scores, emergency TO `+role,
	)
	t.Cleanup(func() { // before the database goes: the role is the cluster's
		_, _ = b.pool.Exec(ctx, `DROP OWNED BY `+role)
		_, _ = b.pool.Exec(ctx, `DROP ROLE `+role)
	})
	cfg := b.pool.Config().ConnConfig.Copy()
	cfg.User = role
	conn, err := pgx.ConnectConfig(ctx, cfg)
	require.NoError(t, err)
	defer conn.Close(ctx)

	_, err = conn.Exec(ctx, `INSERT INTO orders (client, account_id) VALUES ('acme', 'a1')`)
	require.NoError(t, err, "the writer's transaction never fails because of the hub")
	_, err = conn.Exec(ctx, `UPDATE orders SET order_status = 'FILLED'`)
	require.NoError(t, err)
	_, err = conn.Exec(ctx, `INSERT INTO hub.events (channel, op, client, payload) VALUES ('orders', 'INSERT', '', '{}')`)
	require.ErrorContains(t, err, "permission denied", "the writer cannot forge events")
	_, err = conn.Exec(ctx, `SELECT hub.attach('orders', 'mine', NULL, NULL, '{INSERT}')`)
	require.ErrorContains(t, err, "permission denied", "nor attach tables")

	events := b.all(t)
	require.Len(t, events, 2)
	require.Equal(t, "a1", events[0].Subject)
	require.Equal(t, "UPDATE", events[1].Op)
}

// Only a table attached under the trigger's channel is captured (migration
// 6): a trigger made by hand, or one that outlived its table's detach,
// records nothing. Its rows were recorded under the channel it names, here
// a global one that every subscriber sees. A partition of an attached
// partitioned table is captured through the trigger it inherits.
func TestCaptureOnlyAttached(t *testing.T) {
	b := setupCapture(t)
	b.exec(t,
		`CREATE TABLE notes (id int PRIMARY KEY, body text)`,
		`CREATE TRIGGER by_hand AFTER INSERT ON notes FOR EACH ROW EXECUTE FUNCTION hub.capture('scores', '', '', '{}')`,
		`INSERT INTO notes VALUES (1, 'not for subscribers')`,
		`CREATE TABLE fills (id int PRIMARY KEY, client text)`,
		`SELECT hub.attach('fills', 'fills', 'client', NULL, '{INSERT}')`,
		`ALTER TRIGGER hub_capture ON fills RENAME TO kept`, // hub.detach drops hub_capture only
		`SELECT hub.detach('fills')`,
		`INSERT INTO fills VALUES (1, 'acme')`,
		`CREATE TABLE ledger (id int, client text) PARTITION BY RANGE (id)`,
		`CREATE TABLE ledger_1 PARTITION OF ledger FOR VALUES FROM (0) TO (100)`,
		`SELECT hub.attach('ledger', 'ledger', 'client', NULL, '{INSERT}')`,
		`INSERT INTO ledger VALUES (1, 'acme')`,
		`INSERT INTO orders (client) VALUES ('acme')`,
	)
	events := b.all(t)
	var channels []string
	for _, e := range events {
		channels = append(channels, e.Channel)
	}
	require.Equal(t, []string{"ledger", "orders"}, channels)
}
