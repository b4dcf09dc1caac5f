package hub

import (
	"math"
	"slices"
	"sort"
	"time"

	"github.com/hubdev/hub/store"
)

// markEvery is the resolution of read times: batches read within it share
// one mark, so a lag is overestimated by at most this much.
const markEvery = 10 * time.Millisecond

// mark records when the batches ending at last were read (the first of them).
type mark struct {
	last store.Position
	at   time.Time
}

// trimMarks keeps the marks a lag computation can still need. Must be
// called with h.mu held.
func (h *Hub) trimMarks(now time.Time) {
	keep := 2 * h.cfg.MaxLag
	i := 0
	for i < len(h.marks)-1 && now.Sub(h.marks[i].at) > keep {
		i++
	}
	if i > 0 {
		h.marks = slices.Delete(h.marks, 0, i)
	}
}

// readAt is when this node read the event at p; now for an event it has
// not read yet; the zero time for one at or before its start position
// while it has read nothing since: a session's wait for such an event
// starts at its subscribe (SPEC §6), where "now" would make a replay on a
// fresh node never late. Must be called with h.mu held.
func (h *Hub) readAt(p store.Position, now time.Time) time.Time {
	i := sort.Search(len(h.marks), func(i int) bool { return !h.marks[i].last.Less(p) })
	switch {
	case i < len(h.marks):
		return h.marks[i].at
	case !h.pos.Less(p):
		return time.Time{}
	}
	return now
}

// waitAfter is when this node read the first event after p. Must be
// called with h.mu held.
func (h *Hub) waitAfter(p store.Position, now time.Time) time.Time {
	next := store.Position{Xid: p.Xid, ID: p.ID + 1}
	if p.ID == math.MaxInt64 { // a point below a watermark, not an event
		next = store.Position{Xid: p.Xid + 1}
	}
	return h.readAt(next, now)
}

// markRead records that the batches up to the hub's position were read at
// now. Must be called with h.mu held.
func (h *Hub) markRead(now time.Time) {
	if n := len(h.marks); n > 0 && now.Sub(h.marks[n-1].at) < markEvery {
		h.marks[n-1].last = h.pos // one mark per markEvery bounds the memory at any batch rate
	} else {
		h.marks = append(h.marks, mark{last: h.pos, at: now})
	}
	h.trimMarks(now)
}
