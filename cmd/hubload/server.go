package main

import (
	"context"
	"io"

	"github.com/gorilla/websocket"
	"github.com/jackc/pgx/v5"
)

// server is one system under test as the runs see it: the hub or
// Centrifugo. One goroutine uses it, except subscribe, which the fleet
// calls from many.
type server interface {
	name() string
	// pid is the process, for its CPU and RSS; 0 when unknown.
	pid() int
	// baseURL is its HTTP address; /metrics there gives the Go runtime's
	// figures.
	baseURL() string
	// trigger is the trigger on the workload's table that feeds it.
	trigger() string
	// subscribe connects client i and subscribes it to its channel.
	subscribe(ctx context.Context, d *websocket.Dialer, i int) (*websocket.Conn, error)
	// decoder reads its messages carrying rows of channel (scores or
	// orders), with a full JSON decode or by scanning.
	decoder(channel string, scan bool) decodeFunc
	// openLedger starts counting what a run's clients should receive.
	openLedger(ctx context.Context, ctl *pgx.Conn) (ledger, error)
	// restart replaces the process with a fresh one.
	restart(ctx context.Context) error
	close(log io.Writer)
}

// ledger says what the clients of one run should have received.
type ledger interface {
	// committed counts it by tenant ("" on a global channel) once the
	// write phase wr has ended.
	committed(ctx context.Context, wr writeResult) (map[string]uint64, error)
	// settle records in res what the server's side still holds after the
	// drain.
	settle(ctx context.Context, res *result) error
}

// Server names, as -servers takes them.
const (
	hubName        = "hub"
	centrifugoName = "centrifugo"
)
