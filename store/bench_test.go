package store_test

import (
	"context"
	"testing"

	"github.com/hubdev/hub/store"
	"github.com/hubdev/hub/store/storetest"
)

// BenchmarkEventsAfter reads and decodes the reader's pages of 1000 order
// events: the cost per event of the tail, the database's share included.
func BenchmarkEventsAfter(b *testing.B) {
	pool, _ := storetest.NewPool(b)
	s := store.New(pool)
	ctx := context.Background()
	if _, err := pool.Exec(ctx, `INSERT INTO orders (client, account_id, exchange, order_status, order_stake)
		SELECT 'acme', 'acc-' || g, 'polymarket', 'PLACED', 100 FROM generate_series(1, 1000) g`); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	var events int
	for b.Loop() {
		page, _, err := s.EventsAfter(ctx, store.Position{}, 1000)
		if err != nil {
			b.Fatal(err)
		}
		events += len(page)
	}
	if events == 0 {
		b.Fatal("no events read")
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(events), "ns/event")
}
