package hub

import (
	"cmp"
	"context"
	"log/slog"
	"time"
)

// Trimmer is the part of the store retention needs.
type Trimmer interface {
	EventTrim(ctx context.Context, olderThan time.Duration, limit int) (int64, error)
}

// RetentionConfig configures Retention.
type RetentionConfig struct {
	// Keep is how long events stay in the log (HUB_EVENT_RETENTION, default 24h).
	Keep time.Duration
	// Interval is the time between trims (default 1m).
	Interval time.Duration
	// Batch is the most events one statement deletes (default 5000), so a
	// large backlog never holds one long transaction.
	Batch  int
	Logger *slog.Logger
}

// Retention deletes expired events and moves the log's horizon. Running it
// on every node is safe.
type Retention struct {
	store Trimmer
	cfg   RetentionConfig
}

// NewRetention returns the retention task.
func NewRetention(s Trimmer, cfg RetentionConfig) *Retention {
	cfg.Keep = cmp.Or(cfg.Keep, 24*time.Hour)
	cfg.Interval = cmp.Or(cfg.Interval, time.Minute)
	cfg.Batch = cmp.Or(cfg.Batch, 5000)
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Retention{store: s, cfg: cfg}
}

// Run trims now and then every interval until ctx ends.
func (r *Retention) Run(ctx context.Context) error {
	t := time.NewTicker(r.cfg.Interval)
	defer t.Stop()
	for {
		if _, err := r.Trim(ctx); err != nil && ctx.Err() == nil {
			r.cfg.Logger.Warn("event retention failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Trim deletes every expired event, batch by batch, and says how many.
func (r *Retention) Trim(ctx context.Context) (int64, error) {
	var total int64
	for {
		n, err := r.store.EventTrim(ctx, r.cfg.Keep, r.cfg.Batch)
		total += n
		if err != nil || n < int64(r.cfg.Batch) {
			return total, err
		}
	}
}
