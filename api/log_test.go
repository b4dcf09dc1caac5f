package api

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hubdev/hub/store"
)

// loggedEvent is the event with that id as the hub reads it from the log:
// hub.events holds raw rows (migration 8), which the store turns into the
// wire form the transports send. It waits for the event to pass the
// watermark, which other tests' open transactions hold back for a moment.
func loggedEvent(t *testing.T, s *store.Store, id int64) store.Event {
	t.Helper()
	var e store.Event
	require.Eventually(t, func() bool {
		events, err := s.EventList(context.Background(), store.EventListParams{Limit: 100000})
		require.NoError(t, err)
		i := slices.IndexFunc(events, func(e store.Event) bool { return e.Pos.ID == id })
		if i >= 0 {
			e = events[i]
		}
		return i >= 0
	}, 10*time.Second, 5*time.Millisecond, "event %d", id)
	return e
}
