package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Client is a customer: the tenant whose rows its keys may see.
type Client struct {
	Client    string
	Active    bool
	CreatedAt time.Time
}

// ClientCreate adds an active client; ErrExists if the name is taken.
func (s *Store) ClientCreate(ctx context.Context, name string) (Client, error) {
	c := Client{Client: name}
	err := s.pool.QueryRow(ctx,
		`INSERT INTO hub.clients (client) VALUES ($1) RETURNING active, created_at`, name,
	).Scan(&c.Active, &c.CreatedAt)
	if isUniqueViolation(err) {
		return Client{}, fmt.Errorf("client %q: %w", name, ErrExists)
	}
	if err != nil {
		return Client{}, fmt.Errorf("create client %q: %w", name, err)
	}
	return c, nil
}

// ClientEnsure creates the client unless it exists, and activates it.
func (s *Store) ClientEnsure(ctx context.Context, name string) error {
	_, err := s.pool.Exec(ctx, `
		INSERT INTO hub.clients (client) VALUES ($1)
		ON CONFLICT (client) DO UPDATE SET active = true`, name)
	if err != nil {
		return fmt.Errorf("ensure client %q: %w", name, err)
	}
	return nil
}

// ClientGet returns one client; ErrNotFound if there is none.
func (s *Store) ClientGet(ctx context.Context, name string) (Client, error) {
	c := Client{Client: name}
	err := s.pool.QueryRow(ctx, `SELECT active, created_at FROM hub.clients WHERE client = $1`, name).
		Scan(&c.Active, &c.CreatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return Client{}, fmt.Errorf("client %q: %w", name, ErrNotFound)
	}
	if err != nil {
		return Client{}, fmt.Errorf("get client %q: %w", name, err)
	}
	return c, nil
}

// ClientList returns every client by name.
func (s *Store) ClientList(ctx context.Context) ([]Client, error) {
	rows, err := s.pool.Query(ctx, `SELECT client, active, created_at FROM hub.clients ORDER BY client`)
	if err != nil {
		return nil, fmt.Errorf("list clients: %w", err)
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Client, error) {
		var c Client
		err := r.Scan(&c.Client, &c.Active, &c.CreatedAt)
		return c, err
	})
	if err != nil {
		return nil, fmt.Errorf("list clients: %w", err)
	}
	return list, nil
}

// ClientSetActive (de)activates a client; ErrNotFound if there is none.
func (s *Store) ClientSetActive(ctx context.Context, name string, active bool) (Client, error) {
	c := Client{Client: name}
	err := s.pool.QueryRow(ctx,
		`UPDATE hub.clients SET active = $2 WHERE client = $1 RETURNING active, created_at`, name, active,
	).Scan(&c.Active, &c.CreatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return Client{}, fmt.Errorf("client %q: %w", name, ErrNotFound)
	}
	if err != nil {
		return Client{}, fmt.Errorf("set client %q active: %w", name, err)
	}
	return c, nil
}

func isUniqueViolation(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == pgerrcode.UniqueViolation
}
