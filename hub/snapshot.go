package hub

import (
	"context"
	"errors"
	"math"
	"time"

	"github.com/hubdev/hub/hub/wire"
	"github.com/hubdev/hub/store"
)

// A snapshot subscription (SPEC §10) sends the current rows the session
// may see, read in one REPEATABLE READ snapshot S, then exactly the
// changes S does not show, in position order. Positions are causal clocks
// (SPEC §2.3), so a change S does not show may have a smaller position
// than one it shows: a transaction still open when S was taken. The seam
// is therefore the position Q of the newest event S shows: every event
// after Q is a change S does not show, and the few before Q that S does
// not show are sent before snapshot_end, whose id is Q. A resume from Q
// (or any later id) then repeats and loses nothing.

// ErrSnapshotTooLarge refuses a snapshot of more rows than
// Config.SnapshotMaxRows, before any is sent.
var ErrSnapshotTooLarge = errors.New("snapshot too large")

// ErrSnapshotProtocol refuses a snapshot on a protocol that has no frames
// for it (protocol B).
var ErrSnapshotProtocol = errors.New("no snapshot on this protocol")

// snapshotEncoders frame a snapshot's rows and its end per protocol.
var snapshotEncoders = [numProtocols]struct {
	row func(dst []byte, channel string, payload []byte) []byte
	end func(dst []byte, pos string) []byte
}{
	ProtocolA:   {wire.AppendSnapshotA, wire.AppendSnapshotEndA},
	ProtocolSSE: {wire.AppendSSESnapshot, wire.AppendSSESnapshotEnd},
}

// snapshotRun is a snapshot between its subscribe and its end: the open
// read, and the place it holds among the node's concurrent snapshots.
type snapshotRun struct {
	h        *Hub
	sn       *store.Snapshot
	client   string
	channels []string
	filter   wire.Filter
	held     bool // a place in h.snapshots
}

// beginSnapshot opens the read of sub's rows and counts them, waiting for
// a place among the node's concurrent snapshots (each holds a database
// connection while its rows are sent).
func (h *Hub) beginSnapshot(ctx context.Context, p Protocol, sub Subscription) (*snapshotRun, error) {
	if snapshotEncoders[p].row == nil {
		return nil, ErrSnapshotProtocol
	}
	select {
	case h.snapshots <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	r := &snapshotRun{h: h, client: sub.Client, channels: sub.Channels, filter: sub.Filter, held: true}
	var err error
	if r.sn, err = h.log.SnapshotBegin(ctx, sub.Channels); err != nil {
		r.release()
		return nil, err
	}
	n, err := r.sn.Count(ctx, sub.Client)
	if err == nil && n > int64(h.cfg.SnapshotMaxRows) {
		err = ErrSnapshotTooLarge
	}
	if err != nil {
		r.abandon()
		return nil, err
	}
	return r, nil
}

// start is where the session stands while the rows are sent: before every
// event S may not show. It is no resume point for a client that did not
// get snapshot_end; such a client takes a new snapshot.
func (r *snapshotRun) start() store.Position {
	return store.Position{Xid: r.sn.Xmin - 1, ID: math.MaxInt64}
}

// release gives the place among the concurrent snapshots back, once.
func (r *snapshotRun) release() {
	if r.held {
		r.held = false
		<-r.h.snapshots
	}
}

// abandon ends the read before it ran; a nil run holds nothing.
func (r *snapshotRun) abandon() {
	if r == nil {
		return
	}
	r.sn.End()
	r.release()
}

// startSnapshot sends the snapshot on a goroutine of the hub's. Must be
// called with h.mu and s.mu held, right after the subscription changed to
// generation gen.
func (h *Hub) startSnapshot(s *Session, gen int, r *snapshotRun) {
	if s.roomReady == nil {
		s.roomReady = make(chan struct{}, 1)
	}
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		h.runSnapshot(s, gen, r)
	}()
}

// errResubscribed: the session closed or subscribed anew while its
// snapshot was sent; the rest of it is for no one.
var errResubscribed = errors.New("session resubscribed")

// runSnapshot sends the rows, waits for every transaction S saw running,
// sends the changes before the seam that S does not show, then
// snapshot_end, and hands the session to a catch-up from the seam.
func (h *Hub) runSnapshot(s *Session, gen int, r *snapshotRun) {
	enc := snapshotEncoders[s.proto]
	// A snapshot that fits a catch-up page is read whole before any row
	// is queued: its transaction, connection and place go back at once,
	// not at the client's pace. A larger one is queued page by page with
	// its transaction open.
	var page [][]byte
	var pageBytes int64
	buffering := true
	queue := func(frames [][]byte) error {
		return s.queueAsRoom(h.ctx, gen, len(frames), func(i int, since time.Time) entry {
			return entry{row: frames[i], since: since}
		})
	}
	err := r.sn.Rows(h.ctx, r.client, h.cfg.PageSize, func(channel string, rows [][]byte) error {
		f := r.filter[channel]
		var frames [][]byte
		for _, row := range rows {
			if f == nil || f.Match(row) {
				frame := enc.row(nil, channel, row)
				frames = append(frames, frame)
				pageBytes += int64(len(frame))
			}
		}
		if !buffering {
			return queue(frames)
		}
		page = append(page, frames...)
		if len(page) <= h.cfg.PageSize && pageBytes <= h.cfg.PageBytes {
			return nil
		}
		buffering = false
		frames, page = page, nil
		return queue(frames)
	})
	r.abandon() // the rows are read: the connection and the place go back
	if err == nil && len(page) > 0 {
		err = queue(page)
	}
	var seam store.Position
	if err == nil {
		err = h.log.SnapshotSettle(h.ctx, r.sn.Xmax)
	}
	if err == nil {
		seam, err = h.log.SnapshotSeam(h.ctx, r.sn, r.channels)
	}
	if err == nil {
		err = h.sendUnseen(s, gen, r, seam)
	}
	if err == nil {
		err = h.endSnapshot(s, gen, seam, enc.end(nil, seam.String()))
	}
	switch {
	case err == nil, errors.Is(err, errResubscribed), h.ctx.Err() != nil:
	default:
		h.cfg.Logger.Warn("snapshot failed", "conn", s.id, "err", err)
		s.Close(wire.CloseUnavailable)
	}
}

// sendUnseen queues the events before seam that S does not show, and the
// session may see.
func (h *Hub) sendUnseen(s *Session, gen int, r *snapshotRun, seam store.Position) error {
	after := r.start()
	for {
		page, err := h.log.SnapshotUnseen(h.ctx, r.sn, r.channels, after, seam, h.cfg.PageSize)
		if err != nil || len(page) == 0 {
			return err
		}
		now := time.Now()
		var kept []store.Event
		s.mu.Lock()
		for i := range page {
			if s.matches(&page[i], nil) {
				kept = append(kept, page[i])
			}
		}
		s.mu.Unlock()
		err = s.queueAsRoom(h.ctx, gen, len(kept), func(i int, since time.Time) entry {
			return entry{msg: newMessage(kept[i], now), since: since}
		})
		if err != nil {
			return err
		}
		after = page[len(page)-1].Pos
	}
}

// endSnapshot queues snapshot_end and continues the session from the seam
// like a resume from it (SPEC §4.3).
func (h *Hub) endSnapshot(s *Session, gen int, seam store.Position, end []byte) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.gen != gen {
		return errResubscribed
	}
	s.push(entry{control: end})
	s.cursor, s.handed = seam, seam
	s.pump()
	h.startCatchUp(s)
	return nil
}

// queueAsRoom queues n entries made by at, as the queue's bound lets it,
// waiting for room in between; each waits from the subscribe on, as a
// replay's events do (SPEC §10: the rows count toward the slow-consumer
// rule). It fails with errResubscribed when the session closed or
// subscribed anew.
func (s *Session) queueAsRoom(ctx context.Context, gen int, n int, at func(i int, since time.Time) entry) error {
	for i := 0; i < n; {
		s.mu.Lock()
		if s.closed || s.gen != gen {
			s.mu.Unlock()
			return errResubscribed
		}
		for ; i < n && s.events < s.hub.cfg.SendBuffer; i++ {
			s.push(at(i, s.subAt))
		}
		s.pump()
		s.mu.Unlock()
		if i < n {
			select {
			case <-s.roomReady:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	return nil
}
