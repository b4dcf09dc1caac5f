package store

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"time"
)

// Event is one captured row change.
type Event struct {
	Pos       Position
	Channel   string
	Op        string // INSERT, UPDATE or DELETE
	Client    string // the tenant; "" on a global channel
	Subject   string // "" when the channel has no subject column or the value is NULL
	Payload   json.RawMessage
	Old       json.RawMessage // the changed columns' previous values; nil unless UPDATE
	CreatedAt time.Time
	Scope     Scope
	raw       bool // Payload and Old are as the capture recorded them (toWire)
}

// Scope says who may see an event. It comes from the channel's entry in
// hub.channels when the event is read, never from the log row alone
// (SPEC §2.2): a row written into hub.events by hand cannot make a tenant
// channel's event global.
type Scope uint8

const (
	// ScopeNone: the channel is not attached (any more); no one. The zero
	// value, so that an event whose scope nobody set reaches no one.
	ScopeNone Scope = iota
	// ScopeTenant: only sessions of the event's client; an event without
	// a client, no one.
	ScopeTenant
	// ScopeGlobal: every subscriber of the channel; an event that names a
	// client, only that client's.
	ScopeGlobal
)

// Visible reports whether a session of client may see e, its channel
// aside.
func (e *Event) Visible(client string) bool {
	switch e.Scope {
	case ScopeTenant:
		return e.Client != "" && e.Client == client
	case ScopeGlobal:
		return e.Client == "" || e.Client == client
	}
	return false
}

// rawJSON scans a jsonb column as PostgreSQL wrote it: into a
// json.RawMessage, pgx would run it through json.Unmarshal, which checks
// what jsonb has already checked.
func rawJSON(m *json.RawMessage) *[]byte { return (*[]byte)(m) }

func parseScope(s *string) Scope {
	switch {
	case s == nil:
		return ScopeNone
	case *s == "tenant":
		return ScopeTenant
	case *s == "global":
		return ScopeGlobal
	}
	return ScopeNone
}

// EventsAfter returns up to limit events after pos in position order, only
// those every older transaction has finished with (the watermark, SPEC
// §2.3), so that a later read never finds an event before pos. It also
// returns the read's watermark: every transaction with a smaller id had
// finished, and its events are in this page or before pos, unless the page
// is full.
func (s *Store) EventsAfter(ctx context.Context, after Position, limit int) ([]Event, uint64, error) {
	// The last row, id 0 (events start at 1), carries the watermark; the
	// function is STABLE, so it sees this statement's snapshot.
	rows, err := s.pool.Query(ctx, `
		SELECT xid::text, id, channel, op, coalesce(client, ''), coalesce(subject, ''), payload, old, created_at, scope,
		       coalesce(raw, false)
		FROM hub.events_after($1::text::xid8, $2, $3)
		UNION ALL
		SELECT pg_snapshot_xmin(pg_current_snapshot())::text, 0, '', '', '', '', NULL, NULL, now(), NULL, false`,
		strconv.FormatUint(after.Xid, 10), after.ID, limit)
	if err != nil {
		return nil, 0, fmt.Errorf("read events after %s: %w", after, err)
	}
	defer rows.Close()
	// Most reads are a wake-up for a few events: a page sized for the
	// limit would allocate tens of KiB per read, the reader's main garbage.
	events := make([]Event, 0, min(limit, 8))
	var watermark uint64
	for rows.Next() {
		var e Event
		var xid string
		var scope *string
		if err := rows.Scan(&xid, &e.Pos.ID, &e.Channel, &e.Op, &e.Client, &e.Subject, rawJSON(&e.Payload), rawJSON(&e.Old), &e.CreatedAt, &scope, &e.raw); err != nil {
			return nil, 0, fmt.Errorf("scan event: %w", err)
		}
		x, err := strconv.ParseUint(xid, 10, 64)
		if err != nil {
			return nil, 0, fmt.Errorf("scan event xid %q: %w", xid, err)
		}
		if e.Pos.ID == 0 {
			watermark = x
			continue
		}
		e.Pos.Xid, e.Scope = x, parseScope(scope)
		events = append(events, e)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, fmt.Errorf("read events after %s: %w", after, err)
	}
	if watermark == 0 {
		return nil, 0, fmt.Errorf("read events after %s: no watermark", after)
	}
	if err := s.toWire(ctx, events); err != nil {
		return nil, 0, fmt.Errorf("read events after %s: %w", after, err)
	}
	return events, watermark, nil
}

// Backlog tells the reader why it may have stopped short.
type Backlog struct {
	// HeldBack: committed events exist that an older transaction, still
	// open, keeps behind the watermark.
	HeldBack bool
	// Unassigned: the newest event's clock is at or past the snapshot's
	// xmax, a transaction id that may not be taken yet. The watermark
	// passes it only once a transaction with that id or a later one has
	// finished; on a quiet database none may come (see ClockAdvance).
	Unassigned bool
	// OldestWrite is the age of the oldest open transaction that has
	// written anything, in any database of the cluster; 0 when none.
	OldestWrite time.Duration
}

const backlogSQL = `
		WITH newest AS (SELECT xid FROM hub.events ORDER BY xid DESC, id DESC LIMIT 1)
		SELECT coalesce((SELECT xid FROM newest) >= pg_snapshot_xmin(pg_current_snapshot()), false),
		       coalesce((SELECT xid FROM newest) >= pg_snapshot_xmax(pg_current_snapshot()), false)`

// BacklogCheck looks behind the watermark. The newest visible event tells
// whether any committed event is held back; reading it is one step down
// the (xid, id) index from its end, whatever the size of the log (an
// EXISTS over xid >= watermark was planned as a sequential scan). It leaves
// OldestWrite zero: that takes a scan of pg_stat_activity, which the
// reader does not need on every read (OldestWrite).
func (s *Store) BacklogCheck(ctx context.Context) (Backlog, error) {
	var b Backlog
	if err := s.pool.QueryRow(ctx, backlogSQL).Scan(&b.HeldBack, &b.Unassigned); err != nil {
		return Backlog{}, fmt.Errorf("check backlog: %w", err)
	}
	return b, nil
}

// OldestWrite is the age of the oldest open transaction that has written
// anything, in any database of the cluster; 0 when none.
func (s *Store) OldestWrite(ctx context.Context) (time.Duration, error) {
	var secs float64
	err := s.pool.QueryRow(ctx, `
		SELECT coalesce(extract(epoch FROM clock_timestamp() - min(xact_start))::float8, 0)
		FROM pg_stat_activity WHERE backend_xid IS NOT NULL AND pid <> pg_backend_pid()`).Scan(&secs)
	if err != nil {
		return 0, fmt.Errorf("oldest write: %w", err)
	}
	return time.Duration(secs * float64(time.Second)), nil
}

// ClockAdvance takes a transaction id and finishes at once, so that the
// watermark can pass an event clock no transaction had taken
// (Backlog.Unassigned). It writes nothing, but a transaction with an id
// leaves a commit record: the reader calls it only when a held-back event
// found nothing else moving the clock.
func (s *Store) ClockAdvance(ctx context.Context) error {
	if _, err := s.pool.Exec(ctx, `SELECT pg_current_xact_id()`); err != nil {
		return fmt.Errorf("advance the clock: %w", err)
	}
	return nil
}

// Horizon is the newest position retention has deleted; a resume from
// before it has lost events.
func (s *Store) Horizon(ctx context.Context) (Position, error) {
	var p Position
	var xid string
	if err := s.pool.QueryRow(ctx, `SELECT xid::text, id FROM hub.horizon`).Scan(&xid, &p.ID); err != nil {
		return Position{}, fmt.Errorf("read horizon: %w", err)
	}
	var err error
	if p.Xid, err = strconv.ParseUint(xid, 10, 64); err != nil {
		return Position{}, fmt.Errorf("read horizon xid %q: %w", xid, err)
	}
	return p, nil
}

// EventTrim deletes up to limit of the oldest events created more than
// olderThan ago, as a prefix of the position order (it stops at the first
// event that is still young, and never passes the watermark), and moves the
// horizon to the newest position it deleted. Safe to run on every node at
// once. It returns how many events it deleted.
func (s *Store) EventTrim(ctx context.Context, olderThan time.Duration, limit int) (int64, error) {
	var n int64
	err := s.pool.QueryRow(ctx, `
		WITH batch AS (
		    SELECT xid, id, created_at FROM hub.events_after('0', 0, $2)
		), young AS (
		    SELECT xid, id FROM batch WHERE created_at >= now() - $1::interval ORDER BY xid, id LIMIT 1
		), gone AS (
		    DELETE FROM hub.events e USING batch b
		    WHERE e.xid = b.xid AND e.id = b.id
		      AND (NOT EXISTS (SELECT 1 FROM young) OR (b.xid, b.id) < (SELECT xid, id FROM young))
		    RETURNING e.xid, e.id
		), newest AS (
		    SELECT xid, id FROM gone ORDER BY xid DESC, id DESC LIMIT 1
		), moved AS (
		    UPDATE hub.horizon h SET xid = newest.xid, id = newest.id
		    FROM newest WHERE (newest.xid, newest.id) > (h.xid, h.id)
		)
		SELECT count(*) FROM gone`, olderThan, limit).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("trim events: %w", err)
	}
	return n, nil
}

// EventNewest is the newest position this database's log has reached:
// its newest event (committed events held back by the watermark
// included), the horizon when the log is empty, and at least the point
// just below the watermark, which a catch-up that found nothing more
// reports as its resume point. A resume point past it names events this
// database never had.
func (s *Store) EventNewest(ctx context.Context) (Position, error) {
	var xid, xmin string
	var id int64
	err := s.pool.QueryRow(ctx, `
		SELECT p.xid::text, p.id, pg_snapshot_xmin(pg_current_snapshot())::text FROM (
		    (SELECT xid, id FROM hub.events ORDER BY xid DESC, id DESC LIMIT 1)
		    UNION ALL SELECT xid, id FROM hub.horizon) p
		ORDER BY p.xid DESC, p.id DESC LIMIT 1`).Scan(&xid, &id, &xmin)
	if err != nil {
		return Position{}, fmt.Errorf("read newest position: %w", err)
	}
	x, err := strconv.ParseUint(xid, 10, 64)
	if err != nil {
		return Position{}, fmt.Errorf("read newest position xid %q: %w", xid, err)
	}
	newest := Position{Xid: x, ID: id}
	below, err := belowWatermark(xmin)
	if err != nil {
		return Position{}, err
	}
	if newest.Less(below) {
		return below, nil
	}
	return newest, nil
}

// belowWatermark is the last point before watermark xmin: after every
// event a read below it can return, before every event it cannot.
func belowWatermark(xmin string) (Position, error) {
	x, err := strconv.ParseUint(xmin, 10, 64)
	if err != nil || x == 0 {
		return Position{}, fmt.Errorf("read watermark %q: %v", xmin, err)
	}
	return Position{Xid: x - 1, ID: math.MaxInt64}, nil
}

// EventStart is where a reader that wants only new events starts: after
// every event of the transactions that have finished, before every event
// of those still open or yet to come.
func (s *Store) EventStart(ctx context.Context) (Position, error) {
	var xmin string
	if err := s.pool.QueryRow(ctx, `SELECT pg_snapshot_xmin(pg_current_snapshot())::text`).Scan(&xmin); err != nil {
		return Position{}, fmt.Errorf("read watermark: %w", err)
	}
	return belowWatermark(xmin)
}
