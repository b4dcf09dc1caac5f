package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Notification channels: the event log's doorbell and attach/detach.
const (
	NotifyEvents   = "hub_events"
	NotifyChannels = "hub_channels"
)

// ListenerApplicationName names the LISTEN connection in pg_stat_activity.
const ListenerApplicationName = "hub-listener"

// Listener is a dedicated connection LISTENing on the hub's notification
// channels. It is used by one goroutine at a time.
type Listener struct {
	conn *pgx.Conn
}

// Listen opens a connection of its own (not one of the pool's, which would
// lose the LISTEN when returned) and subscribes to NotifyEvents and
// NotifyChannels.
func (s *Store) Listen(ctx context.Context) (*Listener, error) {
	cfg := s.pool.Config().ConnConfig.Copy()
	cfg.RuntimeParams["application_name"] = ListenerApplicationName
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("listener connect: %w", err)
	}
	if _, err := conn.Exec(ctx, "LISTEN "+NotifyEvents+"; LISTEN "+NotifyChannels); err != nil {
		conn.Close(context.Background())
		return nil, fmt.Errorf("listen: %w", err)
	}
	return &Listener{conn: conn}, nil
}

// Wait blocks until a notification arrives and returns its channel. When
// idle stands past without one, it pings the server so that a dead
// connection is found; ErrIdle is returned if the ping succeeded.
func (l *Listener) Wait(ctx context.Context, idle time.Duration) (string, error) {
	wctx, cancel := context.WithTimeout(ctx, idle)
	n, err := l.conn.WaitForNotification(wctx)
	cancel()
	switch {
	case err == nil:
		return n.Channel, nil
	case ctx.Err() != nil:
		return "", ctx.Err()
	case errors.Is(err, context.DeadlineExceeded):
		pctx, cancel := context.WithTimeout(ctx, idle)
		defer cancel()
		if err := l.conn.Ping(pctx); err != nil {
			return "", fmt.Errorf("listener ping: %w", err)
		}
		return "", ErrIdle
	default:
		return "", fmt.Errorf("listener: %w", err)
	}
}

// Close ends the connection.
func (l *Listener) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = l.conn.Close(ctx)
}
