package store

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Position is an event's place in the total order of the log: the writing
// transaction's id, then the event id (SPEC §2.3). The zero Position comes
// before every event.
type Position struct {
	Xid uint64
	ID  int64
}

// ErrInvalidPosition is returned by ParsePosition.
var ErrInvalidPosition = errors.New("invalid position")

// String is the wire form "<xid>-<id>".
func (p Position) String() string {
	return strconv.FormatUint(p.Xid, 10) + "-" + strconv.FormatInt(p.ID, 10)
}

// Less reports whether p comes before q.
func (p Position) Less(q Position) bool {
	return p.Xid < q.Xid || (p.Xid == q.Xid && p.ID < q.ID)
}

// ParsePosition reads the wire form written by String.
func ParsePosition(s string) (Position, error) {
	x, id, ok := strings.Cut(s, "-")
	if !ok || !digits(x) || !digits(id) {
		return Position{}, fmt.Errorf("%w: %q", ErrInvalidPosition, s)
	}
	xid, err1 := strconv.ParseUint(x, 10, 64)
	n, err2 := strconv.ParseInt(id, 10, 64)
	if err1 != nil || err2 != nil {
		return Position{}, fmt.Errorf("%w: %q", ErrInvalidPosition, s)
	}
	return Position{Xid: xid, ID: n}, nil
}

// digits reports whether s is a non-empty run of ASCII digits, so that
// "+1" or " 1", which strconv would take, are refused.
func digits(s string) bool {
	if s == "" || len(s) > 20 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
