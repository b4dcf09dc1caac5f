package store

import "errors"

// Sentinels that api maps to HTTP statuses.
var (
	ErrNotFound = errors.New("not found")
	ErrExists   = errors.New("already exists")
)

// ErrIdle is returned by Listener.Wait when nothing arrived in time but the
// connection is alive.
var ErrIdle = errors.New("listener idle")
