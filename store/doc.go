// Package store owns every SQL statement of the hub and its pgx connections:
// the pool, the dedicated LISTEN connection, the event log (positions,
// reading after a position below the watermark, retention, and the wire
// form of the rows the capture records raw, built as they are read),
// clients, API keys and leases. Its methods are safe for concurrent use;
// it starts no goroutines of its own.
package store
