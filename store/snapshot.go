package store

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
)

// Snapshot is one REPEATABLE READ read of the rows a subscription may
// see (SPEC §10): the rows of its channels' tables as of one database
// snapshot, paged so that a large table never sits whole in memory. It
// holds a pool connection from SnapshotBegin until End, and no
// transaction id, so it never holds the watermark back.
type Snapshot struct {
	s   *Store
	tx  pgx.Tx
	txt string // the snapshot, pg_snapshot's text form
	// Xmin and Xmax are the snapshot's bounds: every transaction below
	// Xmin had finished when it was taken, none from Xmax on had.
	Xmin, Xmax uint64
	sources    []snapshotSource
}

// snapshotSource is one channel's table as hub.channels names it.
type snapshotSource struct {
	channel string
	table   string // regclass's text: quoted as needed
	tenant  string // "" on a global channel
}

// SnapshotBegin opens the read for the named channels; a channel that is
// no longer attached is left out. The rows come from this snapshot only.
func (s *Store) SnapshotBegin(ctx context.Context, channels []string) (*Snapshot, error) {
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, fmt.Errorf("begin snapshot: %w", err)
	}
	sn := &Snapshot{s: s, tx: tx}
	if err := sn.begin(ctx, channels); err != nil {
		sn.End()
		return nil, fmt.Errorf("begin snapshot: %w", err)
	}
	return sn, nil
}

func (sn *Snapshot) begin(ctx context.Context, channels []string) error {
	// to_jsonb writes timestamptz in the session's zone; the wire form
	// wants UTC (SPEC §2.2), which the converter makes of any offset.
	if _, err := sn.tx.Exec(ctx, `SET LOCAL TimeZone = 'UTC'`); err != nil {
		return err
	}
	var xmin, xmax string
	err := sn.tx.QueryRow(ctx, `SELECT s::text, pg_snapshot_xmin(s)::text, pg_snapshot_xmax(s)::text
		FROM pg_current_snapshot() s`).Scan(&sn.txt, &xmin, &xmax)
	if err != nil {
		return err
	}
	if sn.Xmin, err = strconv.ParseUint(xmin, 10, 64); err != nil {
		return err
	}
	if sn.Xmax, err = strconv.ParseUint(xmax, 10, 64); err != nil {
		return err
	}
	rows, err := sn.tx.Query(ctx, `SELECT channel, tbl::text, coalesce(tenant_column, '')
		FROM hub.channels WHERE channel = ANY ($1) ORDER BY channel`, nonNil(channels))
	if err != nil {
		return err
	}
	sn.sources, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (snapshotSource, error) {
		var src snapshotSource
		err := r.Scan(&src.channel, &src.table, &src.tenant)
		return src, err
	})
	return err
}

// where is the condition on a source's rows that client may see: its own
// rows of a tenant table (never a row whose tenant is NULL or empty), every
// row of a global one.
func (src snapshotSource) where() string {
	if src.tenant == "" {
		return "true"
	}
	return pgx.Identifier{src.tenant}.Sanitize() + " = $1"
}

// Count is how many rows client may see, over every channel.
func (sn *Snapshot) Count(ctx context.Context, client string) (int64, error) {
	var total int64
	for _, src := range sn.sources {
		var n int64
		q := `SELECT count(*) FROM ` + src.table + ` WHERE ` + src.where()
		args := []any{client}
		if src.tenant == "" {
			args = nil
		}
		if err := sn.tx.QueryRow(ctx, q, args...).Scan(&n); err != nil {
			return 0, fmt.Errorf("count the snapshot of %q: %w", src.channel, err)
		}
		total += n
	}
	return total, nil
}

// Rows hands fn, channel by channel, pages of at most page rows client
// may see, each in its wire form (SPEC §2.2); fn may block (the session
// waits for room) and keeps nothing of the slice.
func (sn *Snapshot) Rows(ctx context.Context, client string, page int, fn func(channel string, rows [][]byte) error) error {
	for i, src := range sn.sources {
		if err := sn.rows(ctx, i, src, client, page, fn); err != nil {
			return fmt.Errorf("read the snapshot of %q: %w", src.channel, err)
		}
	}
	return nil
}

func (sn *Snapshot) rows(ctx context.Context, i int, src snapshotSource, client string, page int,
	fn func(channel string, rows [][]byte) error) error {
	cursor := "hub_snapshot_" + strconv.Itoa(i)
	q := `DECLARE ` + cursor + ` NO SCROLL CURSOR FOR SELECT to_jsonb(t) FROM ` + src.table + ` t WHERE ` + src.where()
	args := []any{client}
	if src.tenant == "" {
		args = nil
	}
	if _, err := sn.tx.Exec(ctx, q, args...); err != nil {
		return err
	}
	cols, err := sn.s.columns(ctx, src.channel, nil)
	if err != nil {
		return err
	}
	var conv rowConverter
	fetch := `FETCH ` + strconv.Itoa(page) + ` FROM ` + cursor
	for {
		rows, err := sn.tx.Query(ctx, fetch)
		if err != nil {
			return err
		}
		raw, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) ([]byte, error) {
			var b []byte
			err := r.Scan(&b)
			return b, err
		})
		if err != nil {
			return err
		}
		if len(raw) == 0 {
			_, err := sn.tx.Exec(ctx, `CLOSE `+cursor)
			return err
		}
		for j, row := range raw {
			if raw[j], cols, err = sn.s.rowToWire(ctx, &conv, src.channel, row, cols); err != nil {
				return err
			}
		}
		if err := fn(src.channel, raw); err != nil {
			return err
		}
	}
}

// End finishes the read and gives its connection back.
func (sn *Snapshot) End() {
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	_ = sn.tx.Rollback(ctx) // read only: nothing to keep
}

// SnapshotSettle returns once every transaction with an id up to xid has
// finished (pg_snapshot_xmin has passed it), so that every event such a
// transaction wrote is below the watermark. On a quiet database no
// transaction may take those ids: it takes one itself (ClockAdvance).
func (s *Store) SnapshotSettle(ctx context.Context, xid uint64) error {
	target := strconv.FormatUint(xid, 10)
	wait := time.Millisecond
	for {
		var passed, idle bool
		err := s.pool.QueryRow(ctx, `SELECT pg_snapshot_xmin(s) > $1::xid8, pg_snapshot_xmin(s) = pg_snapshot_xmax(s)
			FROM pg_current_snapshot() s`, target).Scan(&passed, &idle)
		switch {
		case err != nil:
			return fmt.Errorf("wait for the snapshot's transactions: %w", err)
		case passed:
			return nil
		case idle:
			if err := s.ClockAdvance(ctx); err != nil {
				return err
			}
			continue
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		wait = min(2*wait, 50*time.Millisecond)
	}
}

// writerSeen is true when the transaction that wrote an event is visible
// in snapshot $1. The event's xid is its causal clock, not always its
// writer's id (SPEC §2.2); the writer's id is the row's xmin, 32 bits,
// which is put in the clock's epoch: the writer's id is at most the clock,
// and less than 2^32 below it.
const writerSeen = `pg_visible_in_snapshot(
	(e.xid::text::bigint - ((e.xid::text::bigint - e.xmin::text::bigint) % 4294967296 + 4294967296) % 4294967296)::text::xid8,
	$1::pg_snapshot)`

// SnapshotSeam returns where the changes after the snapshot continue: the
// position of the newest event of channels whose transaction the snapshot
// saw (SPEC §10). Every such event is at or before it, and a resume from
// it sees none of them again; events of transactions the snapshot did not
// see may come before it too (SnapshotUnseen). Call it after
// SnapshotSettle(Xmax): then every event the snapshot saw, and every
// event that may come before one, is below the watermark.
func (s *Store) SnapshotSeam(ctx context.Context, sn *Snapshot, channels []string) (Position, error) {
	// An event whose clock is below Xmin was written by a transaction
	// that had finished when the snapshot was taken; one whose clock is
	// past Xmax by one that had not (a clock is never smaller than its
	// writer's id, nor, for a writer the snapshot saw, than the Xmax of
	// the snapshot the writer's statement took).
	seam := Position{Xid: sn.Xmin - 1, ID: math.MaxInt64}
	var xid string
	var id int64
	err := s.pool.QueryRow(ctx, `SELECT e.xid::text, e.id FROM hub.events e
		WHERE (e.xid, e.id) > ($2::xid8, $3) AND e.xid <= $4::xid8 AND e.channel = ANY ($5) AND `+writerSeen+`
		ORDER BY e.xid DESC, e.id DESC LIMIT 1`,
		sn.txt, strconv.FormatUint(seam.Xid, 10), seam.ID, strconv.FormatUint(sn.Xmax, 10), nonNil(channels)).Scan(&xid, &id)
	if errors.Is(err, pgx.ErrNoRows) {
		return seam, nil
	}
	if err != nil {
		return Position{}, fmt.Errorf("find the snapshot's seam: %w", err)
	}
	x, err := strconv.ParseUint(xid, 10, 64)
	if err != nil {
		return Position{}, fmt.Errorf("find the snapshot's seam: xid %q: %w", xid, err)
	}
	return Position{Xid: x, ID: id}, nil
}

// SnapshotUnseen returns, in position order, up to limit events of
// channels after after and before seam whose transactions the snapshot
// did not see: the changes that come after the snapshot's rows although
// their positions are before its seam (SPEC §10). Who may see them is the
// caller's to check (Event.Visible).
func (s *Store) SnapshotUnseen(ctx context.Context, sn *Snapshot, channels []string, after, seam Position, limit int) ([]Event, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT e.xid::text, e.id, e.channel, e.op, coalesce(e.client, ''), coalesce(e.subject, ''), e.payload, e.old,
		       e.created_at, hub.scope(e.channel), coalesce(e.raw, false)
		FROM hub.events e
		WHERE (e.xid, e.id) > ($2::xid8, $3) AND (e.xid, e.id) < ($4::xid8, $5) AND e.channel = ANY ($6) AND NOT `+writerSeen+`
		ORDER BY e.xid, e.id LIMIT $7`,
		sn.txt, strconv.FormatUint(after.Xid, 10), after.ID, strconv.FormatUint(seam.Xid, 10), seam.ID, nonNil(channels), limit)
	if err != nil {
		return nil, fmt.Errorf("read the changes the snapshot did not see: %w", err)
	}
	defer rows.Close()
	var events []Event
	for rows.Next() {
		var e Event
		var xid string
		var scope *string
		if err := rows.Scan(&xid, &e.Pos.ID, &e.Channel, &e.Op, &e.Client, &e.Subject, rawJSON(&e.Payload), rawJSON(&e.Old),
			&e.CreatedAt, &scope, &e.raw); err != nil {
			return nil, fmt.Errorf("read the changes the snapshot did not see: %w", err)
		}
		if e.Pos.Xid, err = strconv.ParseUint(xid, 10, 64); err != nil {
			return nil, fmt.Errorf("read the changes the snapshot did not see: xid %q: %w", xid, err)
		}
		e.Scope = parseScope(scope)
		events = append(events, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read the changes the snapshot did not see: %w", err)
	}
	if err := s.toWire(ctx, events); err != nil {
		return nil, fmt.Errorf("read the changes the snapshot did not see: %w", err)
	}
	return events, nil
}
