package wire

import (
	"errors"
	"fmt"
	"strings"
)

// ErrInvalidMessage wraps every decoding failure that the server answers
// with "invalid message": malformed JSON, a missing or unknown type, a field
// of the wrong JSON type (SPEC §4.1, §5).
var ErrInvalidMessage = errors.New(MsgInvalidMessage)

func invalid(err error) error { return fmt.Errorf("%w: %w", ErrInvalidMessage, err) }

// SplitList splits a comma list such as "orders, bets" (protocol B's
// account and contract, SSE's channels query parameter): items are trimmed,
// empty ones dropped, repeats dropped, order kept. Names stay
// case-sensitive. It returns nil when no item is left.
func SplitList(s string) []string {
	var out []string
	for item := range strings.SplitSeq(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" || contains(out, item) {
			continue
		}
		out = append(out, item)
	}
	return out
}

// contains is a linear search: the lists are short (protocol B allows five
// of each), and their length is bounded by the frame size limit anyway.
func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}
