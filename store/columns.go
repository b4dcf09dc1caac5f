package store

import (
	"context"
	"fmt"
	"maps"
	"sync"
	"sync/atomic"
	"time"
)

// columnsMaxAge bounds how long a channel's columns are trusted: a column
// whose type changed, or a channel attached to another table, reaches the
// wire form within it, as an attach reaches every node within 5 s (SPEC
// §2.2).
const columnsMaxAge = 5 * time.Second

// columnCache holds, per channel, how the columns of its table go on the
// wire. A channel's columns are loaded when first needed, again when a raw
// row names a column they lack (one added since), and once they are older
// than columnsMaxAge. A key the table does not have even then (its column
// was dropped since the row was written) gets hub.camel's key and no
// conversion, and is remembered, so that such rows cost no load each.
type columnCache struct {
	mu     sync.Mutex // serializes loads; tables is read without it
	tables atomic.Pointer[map[string]*tableColumns]
}

// tableColumns is one load of a channel's columns; never changed once
// published.
type tableColumns struct {
	set    *columnSet
	loaded time.Time
}

func (t *tableColumns) usable(names []string) bool {
	if t == nil || time.Since(t.loaded) >= columnsMaxAge {
		return false
	}
	for _, n := range names {
		if _, ok := t.set.byName[n]; !ok {
			return false
		}
	}
	return true
}

func (c *columnCache) cached(channel string) *tableColumns {
	if m := c.tables.Load(); m != nil {
		return (*m)[channel]
	}
	return nil
}

// columnsSQL lists a channel's columns with their wire keys and kinds
// (valueKind): a domain's or an array's type is followed down to the
// type it is made of, so that an array of timestamptz or a domain over
// one is found.
const columnsSQL = `
	WITH RECURSIVE base (attname, top, typ) AS (
	    SELECT a.attname, a.atttypid, a.atttypid
	    FROM hub.channels c JOIN pg_attribute a ON a.attrelid = c.tbl
	    WHERE c.channel = $1 AND a.attnum > 0 AND NOT a.attisdropped
	  UNION ALL
	    SELECT b.attname, b.top, CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.typelem END
	    FROM base b JOIN pg_type t ON t.oid = b.typ
	    WHERE t.typtype = 'd' OR (t.typcategory = 'A' AND t.typelem <> 0)
	)
	SELECT attname::text, hub.camel(attname),
	       CASE WHEN top = 'timestamptz'::regtype::oid THEN 1
	            WHEN top = 'timestamp'::regtype::oid THEN 2
	            WHEN bool_or(typ = 'timestamptz'::regtype::oid) THEN 3
	            ELSE 0 END
	FROM base GROUP BY attname, top`

// columns returns channel's columns, loaded again unless the cached ones
// are recent and have every one of names.
func (s *Store) columns(ctx context.Context, channel string, names []string) (*columnSet, error) {
	c := &s.cols
	if t := c.cached(channel); t.usable(names) {
		return t.set, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if t := c.cached(channel); t.usable(names) { // loaded while this call waited
		return t.set, nil
	}
	rows, err := s.pool.Query(ctx, columnsSQL, channel)
	if err != nil {
		return nil, fmt.Errorf("read the columns of channel %q: %w", channel, err)
	}
	defer rows.Close()
	cols := map[string]column{}
	for rows.Next() {
		var name, key string
		var kind int32
		if err := rows.Scan(&name, &key, &kind); err != nil {
			return nil, fmt.Errorf("read the columns of channel %q: %w", channel, err)
		}
		cols[name] = column{key: key, kind: valueKind(kind)}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read the columns of channel %q: %w", channel, err)
	}
	if old := c.cached(channel); old != nil {
		// Columns dropped since stay known: rows that name them are
		// still in the log.
		for name, i := range old.set.byName {
			if _, ok := cols[name]; !ok {
				cols[name] = old.set.cols[i]
			}
		}
	}
	for _, n := range names {
		if _, ok := cols[n]; !ok {
			cols[n] = column{key: camel(n)}
		}
	}
	next := map[string]*tableColumns{}
	if m := c.tables.Load(); m != nil {
		next = maps.Clone(*m)
	}
	t := &tableColumns{set: newColumnSet(cols), loaded: time.Now()}
	next[channel] = t
	c.tables.Store(&next)
	return t.set, nil
}

// toWire turns the payload and old of the raw events among events into
// their wire form (SPEC §2.2), in place.
func (s *Store) toWire(ctx context.Context, events []Event) error {
	var (
		conv    rowConverter
		channel string
		cols    *columnSet
		err     error
	)
	for i := range events {
		e := &events[i]
		if !e.raw {
			continue
		}
		if cols == nil || e.Channel != channel {
			if cols, err = s.columns(ctx, e.Channel, nil); err != nil {
				return err
			}
			channel = e.Channel
		}
		if e.Payload, cols, err = s.rowToWire(ctx, &conv, e.Channel, e.Payload, cols); err != nil {
			return err
		}
		if e.Old != nil {
			if e.Old, cols, err = s.rowToWire(ctx, &conv, e.Channel, e.Old, cols); err != nil {
				return err
			}
		}
		e.raw = false
	}
	return nil
}

// rowToWire converts one row, loading the channel's columns again when
// the row names one that cols lacks.
func (s *Store) rowToWire(ctx context.Context, conv *rowConverter, channel string, row []byte, cols *columnSet) ([]byte, *columnSet, error) {
	if wire, ok := conv.convert(row, cols); ok {
		return wire, cols, nil
	}
	cols, err := s.columns(ctx, channel, unknownKeys(row, cols))
	if err != nil {
		return nil, nil, err
	}
	wire, _ := conv.convert(row, cols) // every key is in cols now
	return wire, cols, nil
}
