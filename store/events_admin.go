package store

import (
	"context"
	"fmt"
	"strconv"

	"github.com/jackc/pgx/v5"
)

// EventListParams selects a page of the log for the admin API (SPEC §8).
type EventListParams struct {
	After   Position // the page starts after it; the zero Position is the log's start
	Channel string   // only this channel; "" for all
	Client  string   // only this tenant's events; "" for all
	Limit   int      // the most events returned
}

// eventListSQL is the reader's read (hub.events_after) with the filters
// on top: the same index walk in position order below the watermark, so a
// page never shows an event before one a later page could still show. The
// page is bounded by LIMIT; a filter that matches rarely makes the walk
// longer (up to the whole log past after), which is fine for an admin page.
const eventListSQL = `
	SELECT xid::text, id, channel, op, coalesce(client, ''), coalesce(subject, ''), payload, old, created_at,
	       coalesce(raw, false)
	FROM hub.events e
	WHERE (e.xid, e.id) > ($1::text::xid8, $2)
	  AND e.xid < pg_snapshot_xmin(pg_current_snapshot())
	  AND ($3::text = '' OR e.channel = $3)
	  AND ($4::text = '' OR e.client = $4)
	ORDER BY e.xid, e.id
	LIMIT $5`

// eventListPlan keeps the read an index walk whatever the statistics say,
// as hub.events_after does (SPEC §2.3).
const eventListPlan = `SET LOCAL enable_seqscan = off; SET LOCAL enable_sort = off; SET LOCAL enable_bitmapscan = off`

// EventList returns up to p.Limit events after p.After in position order,
// only those every older transaction has finished with, filtered by
// channel and client.
func (s *Store) EventList(ctx context.Context, p EventListParams) ([]Event, error) {
	var events []Event
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, eventListPlan); err != nil {
			return fmt.Errorf("set plan: %w", err)
		}
		rows, err := tx.Query(ctx, eventListSQL,
			strconv.FormatUint(p.After.Xid, 10), p.After.ID, p.Channel, p.Client, p.Limit)
		if err != nil {
			return err
		}
		events, err = pgx.CollectRows(rows, scanEvent)
		return err
	})
	if err == nil {
		err = s.toWire(ctx, events)
	}
	if err != nil {
		return nil, fmt.Errorf("list events after %s: %w", p.After, err)
	}
	return events, nil
}

// scanEvent reads a row of eventListSQL's columns.
func scanEvent(r pgx.CollectableRow) (Event, error) {
	var (
		e   Event
		xid string
	)
	if err := r.Scan(&xid, &e.Pos.ID, &e.Channel, &e.Op, &e.Client, &e.Subject, rawJSON(&e.Payload), rawJSON(&e.Old), &e.CreatedAt, &e.raw); err != nil {
		return Event{}, fmt.Errorf("scan event: %w", err)
	}
	x, err := strconv.ParseUint(xid, 10, 64)
	if err != nil {
		return Event{}, fmt.Errorf("scan event xid %q: %w", xid, err)
	}
	e.Pos.Xid = x
	return e, nil
}
