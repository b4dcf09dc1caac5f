package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"time"
)

// The JSON decoders read every frame into structs, all of it, as a
// dashboard would; -decode scan reads only the fields the checks need
// (frame.go).

// scoreRow is a public.scores row as the hub sends it: camelCase, UTC
// timestamps with Z.
type scoreRow struct {
	FixtureID     string         `json:"fixtureId"`
	Live          bool           `json:"live"`
	StatusID      int            `json:"statusId"`
	CurrentPeriod string         `json:"currentPeriod"`
	CurrentMinute int64          `json:"currentMinute"`
	Scores        map[string]any `json:"scores"`
	UpdatedAt     time.Time      `json:"updatedAt"`
}

// scoreRowPG is the same row as to_jsonb writes it, which Centrifugo's
// trigger publishes. Its fields are scoreRow's, so one converts into the
// other.
type scoreRowPG struct {
	FixtureID     string         `json:"fixture_id"`
	Live          bool           `json:"live"`
	StatusID      int            `json:"status_id"`
	CurrentPeriod string         `json:"current_period"`
	CurrentMinute int64          `json:"current_minute"`
	Scores        map[string]any `json:"scores"`
	UpdatedAt     time.Time      `json:"updated_at"`
}

func (r scoreRow) delivery() delivery {
	d := delivery{stamp: r.UpdatedAt, seq: r.CurrentMinute}
	d.row, d.hasSeq = fixtureNumber(r.FixtureID)
	return d
}

func (r scoreRowPG) delivery() delivery { return scoreRow(r).delivery() }

// orderRow is a public.orders row as the hub sends it.
type orderRow struct {
	OrderID         int64     `json:"orderId"`
	Client          string    `json:"client"`
	AccountID       string    `json:"accountId"`
	FixtureID       string    `json:"fixtureId"`
	OutcomeID       int       `json:"outcomeId"`
	Exchange        string    `json:"exchange"`
	ExchangeOrderID string    `json:"exchangeOrderId"`
	OrderStatus     string    `json:"orderStatus"`
	MatchedStatus   string    `json:"matchedStatus"`
	OrderCents      float64   `json:"orderCents"`
	OrderStake      float64   `json:"orderStake"`
	MatchedStake    float64   `json:"matchedStake"`
	MatchedAt       time.Time `json:"matchedAt"`
	CreatedAt       time.Time `json:"createdAt"`
}

// orderRowPG is the orders row as to_jsonb writes it.
type orderRowPG struct {
	OrderID         int64     `json:"order_id"`
	Client          string    `json:"client"`
	AccountID       string    `json:"account_id"`
	FixtureID       string    `json:"fixture_id"`
	OutcomeID       int       `json:"outcome_id"`
	Exchange        string    `json:"exchange"`
	ExchangeOrderID string    `json:"exchange_order_id"`
	OrderStatus     string    `json:"order_status"`
	MatchedStatus   string    `json:"matched_status"`
	OrderCents      float64   `json:"order_cents"`
	OrderStake      float64   `json:"order_stake"`
	MatchedStake    float64   `json:"matched_stake"`
	MatchedAt       time.Time `json:"matched_at"`
	CreatedAt       time.Time `json:"created_at"`
}

func (r orderRow) delivery() delivery {
	return delivery{stamp: r.MatchedAt, tenant: r.Client, row: r.OrderID, seq: int64(r.MatchedStake), hasSeq: r.OrderID != 0}
}

func (r orderRowPG) delivery() delivery { return orderRow(r).delivery() }

// publication is a row type a frame carries.
type publication interface{ delivery() delivery }

// hubFrame is a protocol A frame (SPEC §4); only broadcasts carry a row.
type hubFrame[R publication] struct {
	Type    string `json:"type"`
	ID      string `json:"id"`
	Channel string `json:"channel"`
	Event   string `json:"event"`
	Payload R      `json:"payload"`
	Old     *R     `json:"old"` // the changed columns' previous values
}

// hubJSON decodes protocol A frames carrying rows of type R.
func hubJSON[R publication]() decodeFunc {
	return func(msg []byte, deliver func(delivery)) ([]byte, error) {
		var f hubFrame[R]
		if err := json.Unmarshal(msg, &f); err != nil {
			return nil, err
		}
		if f.Type != "broadcast" {
			return nil, nil // heartbeat
		}
		d := f.Payload.delivery()
		var ok bool
		if d.pos, ok = parsePosition(f.ID); !ok {
			return nil, errors.New("broadcast without a position")
		}
		deliver(d)
		return nil, nil
	}
}

// cfReply is one reply of Centrifugo's JSON protocol (client protocol v2):
// a command's result with its id, or a push.
type cfReply[R publication] struct {
	ID    uint32   `json:"id"`
	Error *cfError `json:"error"`
	Push  *struct {
		Channel string `json:"channel"`
		Pub     *struct {
			Data   R      `json:"data"`
			Offset uint64 `json:"offset"`
		} `json:"pub"`
	} `json:"push"`
}

type cfError struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

// cfPing is the server's ping, an empty reply; the client answers it with
// an empty command or is disconnected.
var cfPing = []byte("{}")

// cfJSON decodes Centrifugo messages carrying rows of type R: one or more
// replies, separated by newlines (the server batches what is queued for a
// connection into one frame).
func cfJSON[R publication]() decodeFunc {
	return func(msg []byte, deliver func(delivery)) ([]byte, error) {
		var reply []byte
		var errs []error
		for line := range bytes.SplitSeq(msg, []byte("\n")) {
			if len(line) == 0 {
				continue
			}
			if bytes.Equal(line, cfPing) {
				reply = cfPing
				continue
			}
			var r cfReply[R]
			if err := json.Unmarshal(line, &r); err != nil {
				errs = append(errs, err)
				continue
			}
			if r.Push != nil && r.Push.Pub != nil {
				deliver(r.Push.Pub.Data.delivery())
			}
		}
		return reply, errors.Join(errs...)
	}
}
