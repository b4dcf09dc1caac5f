package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Emergency is the single row of public.emergency (SPEC §2.1).
type Emergency struct {
	ID          int
	Emergency   bool
	Reason      *string    // nil when NULL
	TriggeredAt *time.Time // when emergency last turned on; nil if it never did
}

// EmergencySetParams is a write of the emergency row.
type EmergencySetParams struct {
	Emergency bool
	// SetReason writes Reason (nil: NULL); without it the stored reason
	// stays.
	SetReason bool
	Reason    *string
}

// emergencySetSQL writes the row in place. triggered_at moves only when
// emergency turns on (SPEC §8), so writing the values the row already has
// changes no column, and the capture trigger records nothing for it (SPEC
// §2.2): a repeat broadcasts nothing.
const emergencySetSQL = `
	UPDATE public.emergency SET
	    emergency    = $1,
	    reason       = CASE WHEN $2 THEN $3 ELSE reason END,
	    triggered_at = CASE WHEN $1 AND NOT emergency THEN now() ELSE triggered_at END
	WHERE id = 1
	RETURNING id, emergency, reason, triggered_at`

// EmergencySet writes the emergency row with an UPDATE, which the capture
// trigger broadcasts on the emergency channel when a value changed. The
// migration creates the row; its absence is an error.
func (s *Store) EmergencySet(ctx context.Context, p EmergencySetParams) (Emergency, error) {
	var e Emergency
	err := s.pool.QueryRow(ctx, emergencySetSQL, p.Emergency, p.SetReason, p.Reason).
		Scan(&e.ID, &e.Emergency, &e.Reason, &e.TriggeredAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return Emergency{}, errors.New("set emergency: the emergency row (id 1) is missing")
	}
	if err != nil {
		return Emergency{}, fmt.Errorf("set emergency: %w", err)
	}
	return e, nil
}
