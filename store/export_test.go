package store

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// BacklogSQL lets the tests explain the backlog check's plan.
const BacklogSQL = backlogSQL

// ConnectTimed is Connect with at most maxConns connections and
// callTimeout in place of the default, so that tests can see a deadline
// fire without waiting for the real one.
func ConnectTimed(ctx context.Context, databaseURL string, maxConns int32, callTimeout time.Duration) (*pgxpool.Pool, error) {
	return connect(ctx, databaseURL, poolOptions{name: "hub-test", maxConns: maxConns, callTimeout: callTimeout})
}
