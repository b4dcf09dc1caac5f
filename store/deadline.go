package store

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// callTimeout bounds every statement, batch and wait for a pooled
// connection that the caller did not bound more tightly. It is longer
// than statementTimeout, so that normally PostgreSQL cancels a slow
// statement first (a clean error, the connection stays usable); it catches
// what statement_timeout cannot: a wait for a connection of a busy pool, a
// server that stopped answering, a network that went silent.
const callTimeout = 15 * time.Second

// deadlineTracer gives each database call a deadline: pgx runs each
// Query, QueryRow, Exec, SendBatch and pool Acquire under the context its
// tracer returns, and hands that context back when the call ends (for
// Query, when its rows are closed). Doing it here rather than in every
// Store method means no call can forget it, including those made through
// the pool outside the Store (readiness' database/sql, the demo).
type deadlineTracer struct{ d time.Duration }

var (
	_ pgx.QueryTracer       = deadlineTracer{}
	_ pgx.BatchTracer       = deadlineTracer{}
	_ pgxpool.AcquireTracer = deadlineTracer{}
)

type cancelKey struct{}

func (t deadlineTracer) start(ctx context.Context) context.Context {
	ctx, cancel := context.WithTimeout(ctx, t.d)
	return context.WithValue(ctx, cancelKey{}, cancel)
}

// end releases the deadline's timer as soon as the call is done.
func (deadlineTracer) end(ctx context.Context) {
	if cancel, ok := ctx.Value(cancelKey{}).(context.CancelFunc); ok {
		cancel()
	}
}

func (t deadlineTracer) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	return t.start(ctx)
}

func (t deadlineTracer) TraceQueryEnd(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryEndData) {
	t.end(ctx)
}

func (t deadlineTracer) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	return t.start(ctx)
}

func (deadlineTracer) TraceBatchQuery(context.Context, *pgx.Conn, pgx.TraceBatchQueryData) {}

func (t deadlineTracer) TraceBatchEnd(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchEndData) {
	t.end(ctx)
}

func (t deadlineTracer) TraceAcquireStart(ctx context.Context, _ *pgxpool.Pool, _ pgxpool.TraceAcquireStartData) context.Context {
	return t.start(ctx)
}

func (t deadlineTracer) TraceAcquireEnd(ctx context.Context, _ *pgxpool.Pool, _ pgxpool.TraceAcquireEndData) {
	t.end(ctx)
}
