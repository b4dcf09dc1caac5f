package store_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/hubdev/hub/store"
	"github.com/hubdev/hub/store/storetest"
)

func TestCaptureSmoke(t *testing.T) {
	t.Parallel()
	pool, _ := storetest.NewPool(t)
	s := store.New(pool)
	storetest.Exec(t, pool,
		`SET TimeZone = 'Asia/Shanghai'`,
		`INSERT INTO orders (client, account_id, exchange_order_id, order_stake, matched_at) VALUES ('acme', 'a1', 'x1', 100.0, '2026-02-15 18:30:05.12+08')`,
		`UPDATE orders SET order_status = 'FILLED', matched_stake = 100.0`,
		`UPDATE orders SET order_status = 'FILLED'`,
	)
	evs, err := s.EventsAfter(context.Background(), store.Position{}, 100)
	require.NoError(t, err)
	for _, e := range evs {
		b, _ := json.Marshal(e)
		t.Logf("%s", b)
	}
	require.Len(t, evs, 2)
}
