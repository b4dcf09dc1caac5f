package main

import (
	"context"
	"database/sql"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/hubdev/hub/migrations"
)

// readiness answers /readyz: the database answers, its schema is current,
// and the reader's LISTEN connection is up. It logs when the answer
// changes, not on every probe, and tells the prober only which of the
// three failed.
type readiness struct {
	db  *sql.DB // over the pool: no connections of its own
	log *slog.Logger

	listening atomic.Bool // the reader's LISTEN connection is up

	mu      sync.Mutex // guards failing
	failing bool
}

var errNotListening = errors.New("listener not connected")

func (r *readiness) check(ctx context.Context) error {
	err := migrations.Check(ctx, r.db)
	if err == nil && !r.listening.Load() {
		err = errNotListening
	}
	r.mu.Lock()
	changed := r.failing != (err != nil)
	r.failing = err != nil
	r.mu.Unlock()
	if changed && err != nil {
		r.log.Warn("not ready", "err", err)
	} else if changed {
		r.log.Info("ready again")
	}
	switch {
	case err == nil:
		return nil
	case errors.Is(err, migrations.ErrNotCurrent):
		return errors.New("schema not current")
	case errors.Is(err, errNotListening):
		return err
	default:
		return errors.New("database unavailable")
	}
}
