package store_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/hubdev/hub/store"
)

func TestEmergencySet(t *testing.T) {
	b := setupCapture(t)
	ctx := context.Background()
	reason := func(s string) *string { return &s }
	events := func() int {
		var n int
		require.NoError(t, b.pool.QueryRow(ctx, `SELECT count(*) FROM hub.events WHERE channel = 'emergency'`).Scan(&n))
		return n
	}

	on, err := b.store.EmergencySet(ctx, store.EmergencySetParams{Emergency: true, SetReason: true, Reason: reason("drill")})
	require.NoError(t, err)
	require.Equal(t, 1, on.ID)
	require.True(t, on.Emergency)
	require.Equal(t, reason("drill"), on.Reason)
	require.NotNil(t, on.TriggeredAt)
	require.Equal(t, 1, events())

	steps := []struct {
		name   string
		p      store.EmergencySetParams
		want   store.Emergency
		events int
	}{
		{"same values: no-op", store.EmergencySetParams{Emergency: true, SetReason: true, Reason: reason("drill")}, on, 1},
		{"reason kept: no-op", store.EmergencySetParams{Emergency: true}, on, 1},
		{"off keeps reason and triggered_at", store.EmergencySetParams{},
			store.Emergency{ID: 1, Reason: reason("drill"), TriggeredAt: on.TriggeredAt}, 2},
		{"reason cleared", store.EmergencySetParams{SetReason: true},
			store.Emergency{ID: 1, TriggeredAt: on.TriggeredAt}, 3},
		{"off again: no-op", store.EmergencySetParams{SetReason: true}, store.Emergency{ID: 1, TriggeredAt: on.TriggeredAt}, 3},
	}
	for _, s := range steps {
		got, err := b.store.EmergencySet(ctx, s.p)
		require.NoError(t, err, s.name)
		require.Equal(t, s.want.Emergency, got.Emergency, s.name)
		require.Equal(t, s.want.Reason, got.Reason, s.name)
		require.True(t, s.want.TriggeredAt.Equal(*got.TriggeredAt), s.name)
		require.Equal(t, s.events, events(), s.name)
	}

	again, err := b.store.EmergencySet(ctx, store.EmergencySetParams{Emergency: true})
	require.NoError(t, err)
	require.True(t, again.TriggeredAt.After(*on.TriggeredAt), "turning on moves triggered_at")
	require.Equal(t, 4, events())

	b.exec(t, `DELETE FROM public.emergency`)
	_, err = b.store.EmergencySet(ctx, store.EmergencySetParams{Emergency: true})
	require.ErrorContains(t, err, "emergency row (id 1) is missing")
}
