package store

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// ChannelList returns the names of the attached channels (hub.channels).
func (s *Store) ChannelList(ctx context.Context) ([]string, error) {
	rows, err := s.pool.Query(ctx, `SELECT channel FROM hub.channels ORDER BY channel`)
	if err != nil {
		return nil, fmt.Errorf("list channels: %w", err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("list channels: %w", err)
	}
	return names, nil
}
