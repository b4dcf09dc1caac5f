package main

import (
	"strconv"
	"strings"
	"time"
)

// delivery is what a client takes from one publication, whichever server
// sent it and however it was decoded.
type delivery struct {
	pos    position  // the hub's position; zero from Centrifugo, which sends none
	stamp  time.Time // the writer's clock; zero when absent
	tenant string    // the row's tenant; "" on a global channel
	// row and seq identify the row (fixture number, order id) and its
	// counter (current_minute, matched_stake), which every UPDATE raises:
	// a seq not above the row's previous one is a duplicate or out of
	// order. hasSeq is false when the row could not be identified.
	row, seq int64
	hasSeq   bool
}

// position is the hub's event position "<xid>-<id>" (SPEC §2.3).
type position struct{ xid, id uint64 }

// after reports whether p comes after q.
func (p position) after(q position) bool {
	return p.xid > q.xid || (p.xid == q.xid && p.id > q.id)
}

// parsePosition reads "<xid>-<id>".
func parsePosition(s string) (position, bool) {
	x, i, ok := strings.Cut(s, "-")
	if !ok {
		return position{}, false
	}
	xid, err1 := strconv.ParseUint(x, 10, 64)
	id, err2 := strconv.ParseUint(i, 10, 64)
	return position{xid, id}, err1 == nil && err2 == nil
}

// decodeFunc takes one WebSocket message and hands each publication in it
// to deliver. reply is what the client must answer (Centrifugo's pong),
// nil for nothing; err reports a message or a part of it that could not
// be read.
type decodeFunc func(msg []byte, deliver func(delivery)) (reply []byte, err error)

// fixtureNumber is N of hubload's fixture "hubload-N".
func fixtureNumber(id string) (int64, bool) {
	n, ok := strings.CutPrefix(id, "hubload-")
	if !ok {
		return 0, false
	}
	v, err := strconv.ParseInt(n, 10, 64)
	return v, err == nil
}
