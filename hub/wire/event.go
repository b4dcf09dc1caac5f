package wire

import (
	"bytes"
	"encoding/json"
	"time"
)

// Event is what the encoders need of one captured row change. The caller
// copies it from the store's event (wire imports nothing of the module).
type Event struct {
	Pos       string // the position "<xid>-<id>" (SPEC §2.3)
	ID        int64  // the event id; protocol B's block_num
	Channel   string
	Op        string // INSERT, UPDATE or DELETE
	Subject   string // "" when the event has none
	Payload   json.RawMessage
	Old       json.RawMessage // nil, empty or null: the key is left out
	CreatedAt time.Time
}

// hasOld reports whether the event carries previous values. An INSERT has
// no old, and the key is then absent, never null (SPEC §2.2).
func (e *Event) hasOld() bool {
	old := bytes.TrimSpace(e.Old)
	return len(old) > 0 && string(old) != "null"
}
