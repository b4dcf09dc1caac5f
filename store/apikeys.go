package store

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// APIKey is a key's stored record; the key itself is never stored.
type APIKey struct {
	ID             int64
	Client         string
	Label          string
	MaxConnections int
	CreatedAt      time.Time
	RevokedAt      *time.Time
}

// APIKeyCreateParams describes a new key.
type APIKeyCreateParams struct {
	Client         string
	Label          string
	MaxConnections int // default 5
}

// NewAPIKey returns a random key in its canonical form: a version 4 UUID,
// 36 characters, lowercase.
func NewAPIKey() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// HashAPIKey is what is stored for a key: SHA-256 of its canonical text.
// Lookups go by this hash, so their timing says nothing about the key.
func HashAPIKey(key string) []byte {
	h := sha256.Sum256([]byte(strings.ToLower(key)))
	return h[:]
}

// APIKeyCreate stores a new key for an existing client and returns the
// record with the key, which is shown this once. ErrNotFound if the client
// does not exist.
func (s *Store) APIKeyCreate(ctx context.Context, p APIKeyCreateParams) (APIKey, string, error) {
	if p.MaxConnections == 0 {
		p.MaxConnections = 5
	}
	key := NewAPIKey()
	k := APIKey{Client: p.Client, Label: p.Label, MaxConnections: p.MaxConnections}
	err := s.pool.QueryRow(ctx, `
		INSERT INTO hub.api_keys (client, key_hash, label, max_connections)
		SELECT client, $2, $3, $4 FROM hub.clients WHERE client = $1
		RETURNING id, created_at`,
		p.Client, HashAPIKey(key), p.Label, p.MaxConnections,
	).Scan(&k.ID, &k.CreatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return APIKey{}, "", fmt.Errorf("client %q: %w", p.Client, ErrNotFound)
	}
	if err != nil {
		return APIKey{}, "", fmt.Errorf("create api key: %w", err)
	}
	return k, key, nil
}

// APIKeyList returns a client's keys, oldest first.
func (s *Store) APIKeyList(ctx context.Context, client string) ([]APIKey, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT id, client, label, max_connections, created_at, revoked_at
		FROM hub.api_keys WHERE client = $1 ORDER BY id`, client)
	if err != nil {
		return nil, fmt.Errorf("list api keys: %w", err)
	}
	keys, err := pgx.CollectRows(rows, scanAPIKey)
	if err != nil {
		return nil, fmt.Errorf("list api keys: %w", err)
	}
	return keys, nil
}

// APIKeyRevoke revokes a key (again: no change); ErrNotFound if there is none.
func (s *Store) APIKeyRevoke(ctx context.Context, id int64) (APIKey, error) {
	rows, err := s.pool.Query(ctx, `
		UPDATE hub.api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1
		RETURNING id, client, label, max_connections, created_at, revoked_at`, id)
	if err != nil {
		return APIKey{}, fmt.Errorf("revoke api key %d: %w", id, err)
	}
	k, err := pgx.CollectExactlyOneRow(rows, scanAPIKey)
	if errors.Is(err, pgx.ErrNoRows) {
		return APIKey{}, fmt.Errorf("api key %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return APIKey{}, fmt.Errorf("revoke api key %d: %w", id, err)
	}
	return k, nil
}

// APIKeyRevokeLabel revokes every live key of a client with that label; the
// embedded mode uses it to replace the previous demo key.
func (s *Store) APIKeyRevokeLabel(ctx context.Context, client, label string) error {
	_, err := s.pool.Exec(ctx, `
		UPDATE hub.api_keys SET revoked_at = now()
		WHERE client = $1 AND label = $2 AND revoked_at IS NULL`, client, label)
	if err != nil {
		return fmt.Errorf("revoke %q keys of %q: %w", label, client, err)
	}
	return nil
}

// APIKeyAuth is what authentication needs to know about a presented key.
type APIKeyAuth struct {
	APIKey
	ClientActive bool
}

// APIKeyLookup finds a key by its text (any case); ErrNotFound if no key
// has that hash. Revoked keys and inactive clients are returned as such:
// the caller decides.
func (s *Store) APIKeyLookup(ctx context.Context, key string) (APIKeyAuth, error) {
	var a APIKeyAuth
	err := s.pool.QueryRow(ctx, `
		SELECT k.id, k.client, k.label, k.max_connections, k.created_at, k.revoked_at, c.active
		FROM hub.api_keys k JOIN hub.clients c USING (client)
		WHERE k.key_hash = $1`, HashAPIKey(key),
	).Scan(&a.ID, &a.Client, &a.Label, &a.MaxConnections, &a.CreatedAt, &a.RevokedAt, &a.ClientActive)
	if errors.Is(err, pgx.ErrNoRows) {
		return APIKeyAuth{}, ErrNotFound
	}
	if err != nil {
		return APIKeyAuth{}, fmt.Errorf("look up api key: %w", err)
	}
	return a, nil
}

func scanAPIKey(r pgx.CollectableRow) (APIKey, error) {
	var k APIKey
	err := r.Scan(&k.ID, &k.Client, &k.Label, &k.MaxConnections, &k.CreatedAt, &k.RevokedAt)
	return k, err
}
