package store

import (
	"context"
	"fmt"
	"strconv"
	"time"
)

// EventFilter names the events one session may see.
type EventFilter struct {
	After  Position // read after this position
	Client string   // the session's client
	// Channels are the subscribed channels; nil means every channel
	// attached at the time of the read.
	Channels []string
}

// EventPage is one page of a session's catch-up.
type EventPage struct {
	Events []Event
	// Reached is how far the read got: every event up to it that the
	// filter matches is in Events or came before After. Past the last
	// event when the read found everything below the watermark.
	Reached Position
	// Complete: the read reached the watermark; a read now would find
	// nothing more.
	Complete bool
	// Trimmed: retention deleted events after After before they could be
	// read; Events is empty and the session cannot continue without a gap.
	Trimmed bool
}

// EventsFor reads a session's next catch-up page: only the events the
// filter lets through, in position order, below the watermark, at most
// maxRows of them and, past the first, at most about maxBytes of payload
// (issue 12 §5). Its cost follows the events it returns, not the log's
// other clients and channels.
func (s *Store) EventsFor(ctx context.Context, f EventFilter, maxRows int, maxBytes int64) (EventPage, error) {
	var channels []string
	if f.Channels != nil {
		channels = nonNil(f.Channels)
	}
	rows, err := s.pool.Query(ctx, `
		SELECT xid::text, id, channel, op, coalesce(client, ''), coalesce(subject, ''), payload, old, created_at, scope,
		       coalesce(raw, false), watermark::text, trimmed
		FROM hub.events_for($1::text::xid8, $2, $3, $4, $5, $6)`,
		strconv.FormatUint(f.After.Xid, 10), f.After.ID, f.Client, channels, maxRows, maxBytes)
	if err != nil {
		return EventPage{}, fmt.Errorf("read events for %q after %s: %w", f.Client, f.After, err)
	}
	defer rows.Close()
	page := EventPage{Reached: f.After}
	var marked bool
	for rows.Next() {
		var (
			e                             Event
			xid, channel, op, scope, mark *string
			id                            *int64
			created                       *time.Time
			trimmed                       *bool
		)
		if err := rows.Scan(&xid, &id, &channel, &op, &e.Client, &e.Subject, rawJSON(&e.Payload), rawJSON(&e.Old), &created, &scope, &e.raw, &mark, &trimmed); err != nil {
			return EventPage{}, fmt.Errorf("scan event: %w", err)
		}
		if op == nil { // the marker row, last
			marked = true
			page.Trimmed = trimmed != nil && *trimmed
			if mark != nil {
				below, err := belowWatermark(*mark)
				if err != nil {
					return EventPage{}, err
				}
				page.Reached, page.Complete = maxPosition(page.Reached, below), true
			}
			continue
		}
		if e.Pos.Xid, err = strconv.ParseUint(*xid, 10, 64); err != nil {
			return EventPage{}, fmt.Errorf("scan event xid %q: %w", *xid, err)
		}
		e.Pos.ID, e.Channel, e.Op, e.CreatedAt, e.Scope = *id, *channel, *op, *created, parseScope(scope)
		page.Events = append(page.Events, e)
		page.Reached = e.Pos
	}
	if err := rows.Err(); err != nil {
		return EventPage{}, fmt.Errorf("read events for %q after %s: %w", f.Client, f.After, err)
	}
	if !marked {
		return EventPage{}, fmt.Errorf("read events for %q after %s: no end marker", f.Client, f.After)
	}
	if err := s.toWire(ctx, page.Events); err != nil {
		return EventPage{}, fmt.Errorf("read events for %q after %s: %w", f.Client, f.After, err)
	}
	return page, nil
}

func maxPosition(p, q Position) Position {
	if p.Less(q) {
		return q
	}
	return p
}
