package main

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// orderIDBase keeps hubload's orders apart from other rows of the table.
const orderIDBase = 900_000_000

// tenantName is tenant i: the hub client, Centrifugo's user, the rows'
// client column.
func tenantName(i int) string { return fmt.Sprintf("hubload-t%03d", i) }

// globalClient owns the keys of the clients of a global channel (the
// user of their Centrifugo tokens).
const globalClient = "hubload"

// prepareRows makes sure the rows the writers update exist: scores
// fixtures hubload-0.., or orders orderIDBase+1.. of tenant i % tenants.
func prepareRows(ctx context.Context, conn *pgx.Conn, cfg config) error {
	var err error
	if cfg.Tenants == 0 {
		_, err = conn.Exec(ctx, `
			INSERT INTO public.scores (fixture_id, live, status_id, current_period, current_minute, updated_at)
			SELECT 'hubload-' || i, true, 1, '1H', 0, now() FROM generate_series(0, $1::int - 1) AS i
			ON CONFLICT (fixture_id) DO NOTHING`, cfg.Rows)
	} else {
		_, err = conn.Exec(ctx, `
			INSERT INTO public.orders (order_id, client, account_id, fixture_id, outcome_id, exchange,
			       exchange_order_id, order_status, matched_status, order_cents, order_stake, matched_stake, matched_at)
			SELECT $3::bigint + i, 'hubload-t' || lpad((i % $2::int)::text, 3, '0'), 'acct-' || i, 'fx-' || i % 300, 1,
			       'betfair', 'x' || i, 'open', 'unmatched', 250, 10, 0, now()
			FROM generate_series(0, $1::int - 1) AS i
			ON CONFLICT (order_id) DO UPDATE SET client = EXCLUDED.client
			WHERE orders.client <> EXCLUDED.client`, cfg.Rows, cfg.Tenants, orderIDBase)
	}
	if err != nil {
		return fmt.Errorf("prepare rows: %w", err)
	}
	return nil
}

// lastEventID is the newest event id of the log: events after it are the
// run's.
func lastEventID(ctx context.Context, conn *pgx.Conn) (int64, error) {
	var id int64
	err := conn.QueryRow(ctx, `SELECT coalesce(max(id), 0) FROM hub.events`).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("read the newest event: %w", err)
	}
	return id, nil
}

// committedEvents counts the events of channel after id by tenant ("" for
// a global channel): what each client should have received.
func committedEvents(ctx context.Context, conn *pgx.Conn, channel string, after int64) (map[string]uint64, error) {
	rows, err := conn.Query(ctx, `
		SELECT coalesce(client, ''), count(*) FROM hub.events
		WHERE id > $1 AND channel = $2 GROUP BY 1`, after, channel)
	if err != nil {
		return nil, fmt.Errorf("count the run's events: %w", err)
	}
	out := map[string]uint64{}
	var tenant string
	var n uint64
	_, err = pgx.ForEachRow(rows, []any{&tenant, &n}, func() error {
		out[tenant] = n
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("count the run's events: %w", err)
	}
	return out, nil
}
