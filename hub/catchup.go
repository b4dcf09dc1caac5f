package hub

import (
	"time"

	"github.com/hubdev/hub/hub/wire"
	"github.com/hubdev/hub/store"
)

// startCatchUp starts the session's catch-up from the log unless one runs.
// Must be called with h.mu and s.mu held.
func (h *Hub) startCatchUp(s *Session) {
	if s.catching || h.ctx.Err() != nil {
		return
	}
	if s.roomReady == nil {
		s.roomReady = make(chan struct{}, 1) // only catching sessions wait for room
	}
	s.catching = true
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		h.catchUp(s)
	}()
}

// catchUp feeds a session from the log after its cursor, as fast as the
// session takes it, until it has caught up with the live stream, then
// hands it back to live delivery (SPEC §4.3, §6). The session's memory
// stays bounded: one page plus its queue. The log is read through the
// session's filter, so the other clients' events cost it nothing, and
// the cursor moves to where each read got (issue 12 §5).
func (h *Hub) catchUp(s *Session) {
	var failures int
	for {
		s.mu.Lock()
		if s.closed || s.sub == nil || s.live {
			s.catching = false
			s.mu.Unlock()
			return
		}
		gen, filter := s.gen, s.filter()
		s.mu.Unlock()

		hubPos := h.position() // before the read: the read covers every event up to it
		page, err := h.log.EventsFor(h.ctx, filter, h.cfg.PageSize, h.cfg.PageBytes)
		if err != nil {
			if h.ctx.Err() != nil {
				h.stopCatching(s)
				return
			}
			failures++
			if failures == 1 {
				h.cfg.Logger.Warn("catch-up read failed; retrying", "err", err)
			}
			if !sleep(h.ctx, backoff(failures)) {
				h.stopCatching(s)
				return
			}
			continue
		}
		failures = 0
		if page.Trimmed {
			if h.closeTrimmed(s, gen, filter.After) {
				return
			}
			continue // resubscribed meanwhile, or closed: look again
		}
		if !h.feed(s, gen, page) {
			continue // resubscribed meanwhile, or closed: look again
		}
		if page.Complete && h.rejoin(s, gen, hubPos) {
			return
		}
	}
}

// closeTrimmed closes the session because retention deleted events after
// after, unless it was closed or resubscribed since the read: a new
// subscription has a cursor of its own, and a close then would name a
// position the client no longer asked for. The check and the detach are
// one step under the locks, so that no subscribe slips in between.
func (h *Hub) closeTrimmed(s *Session, gen int, after store.Position) bool {
	h.mu.Lock()
	s.mu.Lock()
	current := s.gen == gen && s.detachLocked()
	if current {
		s.catching = false
	}
	s.mu.Unlock()
	h.mu.Unlock()
	if current {
		s.conn.Close(wire.Trimmed(after.String()))
	}
	return current
}

func (h *Hub) stopCatching(s *Session) {
	s.mu.Lock()
	s.catching = false
	s.mu.Unlock()
}

// feed queues a page's matching events as room allows, then moves the
// cursor to where the read got; false when the session's subscription
// changed under it.
func (h *Hub) feed(s *Session, gen int, p store.EventPage) bool {
	page := p.Events
	now := time.Now()
	waits := make([]time.Time, len(page))
	h.mu.RLock()
	for i := range page {
		waits[i] = h.readAt(page[i].Pos, now)
	}
	h.mu.RUnlock()
	for i := 0; i < len(page); {
		s.mu.Lock()
		if s.closed || s.gen != gen {
			s.mu.Unlock()
			return false
		}
		for ; i < len(page) && s.events < h.cfg.SendBuffer; i++ {
			e := page[i]
			if s.matches(&e, nil) {
				s.push(entry{msg: newMessage(e, waits[i]), since: maxTime(waits[i], s.subAt)})
			}
			s.cursor = e.Pos
		}
		if i == len(page) && s.cursor.Less(p.Reached) {
			s.cursor = p.Reached // the rest up to here was not for this session
		}
		s.pump()
		s.mu.Unlock()
		if i < len(page) {
			select {
			case <-s.roomReady:
			case <-h.ctx.Done():
				return false
			}
		}
	}
	if len(page) == 0 {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.closed || s.gen != gen {
			return false
		}
		if s.cursor.Less(p.Reached) {
			s.cursor = p.Reached
		}
	}
	return true
}

// rejoin returns the session to live delivery if it has seen everything
// the hub has delivered; no batch is in flight while it checks. hubPos is
// the hub's position before the short read that brought the session up to
// the watermark: every event up to it was in that read or before it, so a
// cursor behind it (the hub may start at a position no event has) moves up
// to it when the hub has delivered nothing since.
func (h *Hub) rejoin(s *Session, gen int, hubPos store.Position) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.gen != gen {
		return false
	}
	if s.cursor.Less(hubPos) && h.pos == hubPos {
		s.cursor = hubPos
	}
	if s.cursor.Less(h.pos) {
		return false
	}
	s.live, s.catching = true, false
	return true
}

// position is the position of the last event the hub delivered.
func (h *Hub) position() store.Position {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.pos
}
