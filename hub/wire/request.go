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
// case-sensitive. It returns nil when no item is left. Its cost is linear
// in len(s): the list comes from untrusted input (issue 12).
func SplitList(s string) []string {
	list, _ := SplitListMax(s, -1)
	return list
}

// SplitListMax is SplitList that stops at the first item past most
// distinct ones, which no valid request has: ok is false then, and list
// holds the first most items. A negative most is no limit.
func SplitListMax(s string, most int) (list []string, ok bool) {
	var seen map[string]struct{}
	for item := range strings.SplitSeq(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		if seen == nil {
			seen = map[string]struct{}{}
		}
		if _, dup := seen[item]; dup {
			continue
		}
		if len(list) == most {
			return list, false
		}
		seen[item] = struct{}{}
		list = append(list, item)
	}
	return list, true
}
