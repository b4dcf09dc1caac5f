package wire

import (
	"encoding/json"
	"errors"
	"strings"
	"time"
)

// Protocol B (EOSPark-compatible, SPEC §5) status codes, sent as errno.
const (
	ErrnoOK        = 0
	ErrnoBadFrame  = 400 // invalid message, refused subscribe or unsubscribe
	ErrnoForbidden = 403 // key missing or invalid
	ErrnoRepeat    = 406 // the key already has a protocol B connection
	ErrnoLimit     = 429 // the key is at its max_connections
)

// Protocol B texts; a key over its limit gets MsgConnectionLimit as in
// protocol A.
const (
	MsgForbidden             = "Forbidden"
	MsgNoRepeat              = "No repeat connection."
	MsgUnknownContractPrefix = "Unknown contract: " // followed by the name; see UnknownContract
	MsgTooManyAccounts       = "too many accounts (at most 5 per connection)"
	MsgTooManyContracts      = "too many contracts (at most 5 per connection)"
)

// MaxAccountsB and MaxContractsB bound the distinct accounts and contracts
// of one connection's subscription (SPEC §5); "*" counts as one account.
const (
	MaxAccountsB  = 5
	MaxContractsB = 5
)

// UnknownContract is the refusal reason for a subscribe naming a channel
// that is not attached.
func UnknownContract(name string) string { return MsgUnknownContractPrefix + name }

// Message types of protocol B.
const (
	MsgTypeSubscribe   = "subscribe"
	MsgTypeUnsubscribe = "unsubscribe"
)

// Reasons DecodeB gives for a well-formed request it refuses; the caller
// sends err.Error() as the reason of a refused subscribe or unsubscribe.
var (
	ErrAccountRequired  = errors.New("account required")
	ErrContractRequired = errors.New("contract required")
	ErrUnsubscribeOne   = errors.New("unsubscribe takes one account and one contract")
	// A request naming more distinct accounts or contracts than a whole
	// connection may hold can never be valid; DecodeB refuses it before
	// the subscription is built (issue 12).
	ErrTooManyAccounts  = errors.New(MsgTooManyAccounts)
	ErrTooManyContracts = errors.New(MsgTooManyContracts)
)

// RequestB is one decoded protocol B frame.
type RequestB struct {
	Type      string   // MsgTypeSubscribe or MsgTypeUnsubscribe
	Accounts  []string // subject values, "*" for any; split by SplitList
	Contracts []string // channel names; split by SplitList
	Action    string   // op, trimmed; "" for every op
}

// DecodeB decodes a protocol B text frame, {"msg_type":…,"account":…,
// "contract":…,"action_name":…}. Unknown fields are ignored; null counts
// as "". The error wraps ErrInvalidMessage when data is not a JSON object,
// msg_type is missing or unknown, or a field is not a string. A well-formed
// request that lacks an account or contract (or, for unsubscribe, names
// more than one), or names more than MaxAccountsB accounts or
// MaxContractsB contracts, returns its Type with ErrAccountRequired,
// ErrContractRequired, ErrUnsubscribeOne, ErrTooManyAccounts or
// ErrTooManyContracts, for a refusal reply. Its cost is linear in
// len(data).
func DecodeB(data []byte) (RequestB, error) {
	var in struct {
		MsgType    *string `json:"msg_type"`
		Account    *string `json:"account"`
		Contract   *string `json:"contract"`
		ActionName *string `json:"action_name"`
	}
	if err := json.Unmarshal(data, &in); err != nil {
		return RequestB{}, invalid(err)
	}
	if in.MsgType == nil || (*in.MsgType != MsgTypeSubscribe && *in.MsgType != MsgTypeUnsubscribe) {
		return RequestB{}, invalid(errors.New("missing or unknown msg_type"))
	}
	r := RequestB{Type: *in.MsgType, Action: strings.TrimSpace(deref(in.ActionName))}
	mostAccounts, mostContracts := MaxAccountsB, MaxContractsB
	if r.Type == MsgTypeUnsubscribe {
		mostAccounts, mostContracts = 1, 1
	}
	var accountsOK, contractsOK bool
	r.Accounts, accountsOK = SplitListMax(deref(in.Account), mostAccounts)
	r.Contracts, contractsOK = SplitListMax(deref(in.Contract), mostContracts)
	switch {
	case len(r.Accounts) == 0:
		return RequestB{Type: r.Type}, ErrAccountRequired
	case len(r.Contracts) == 0:
		return RequestB{Type: r.Type}, ErrContractRequired
	case r.Type == MsgTypeUnsubscribe && (!accountsOK || !contractsOK):
		return RequestB{Type: r.Type}, ErrUnsubscribeOne
	case !accountsOK:
		return RequestB{Type: r.Type}, ErrTooManyAccounts
	case !contractsOK:
		return RequestB{Type: r.Type}, ErrTooManyContracts
	}
	return r, nil
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// AppendDataB appends the protocol B data push of e, shaped like an EOS
// transaction (SPEC §5): trx_id is the position, block_num the event id,
// the action's account the channel, name the op, actor the subject and
// data the payload; old is left out when e has none.
func AppendDataB(dst []byte, e Event) []byte {
	dst = append(dst, `{"errno":0,"msg_type":"data","errmsg":"","data":{"trx_id":`...)
	dst = appendString(dst, e.Pos)
	dst = append(dst, `,"block_num":`...)
	dst = appendInt(dst, e.ID)
	dst = append(dst, `,"trx_timestamp":"`...)
	dst = appendTime(dst, e.CreatedAt, 'T', true)
	dst = append(dst, `","actions":[{"account":`...)
	dst = appendString(dst, e.Channel)
	dst = append(dst, `,"name":`...)
	dst = appendString(dst, e.Op)
	dst = append(dst, `,"authorization":[{"actor":`...)
	dst = appendString(dst, e.Subject)
	dst = append(dst, `,"permission":"active"}],"data":`...)
	dst = appendRaw(dst, e.Payload)
	if e.hasOld() {
		dst = append(dst, `,"old":`...)
		dst = append(dst, e.Old...)
	}
	return append(dst, "}]}}"...)
}

// AppendHeartbeatB appends the heartbeat with now in UTC as
// "2006-01-02 15:04:05".
func AppendHeartbeatB(dst []byte, now time.Time) []byte {
	dst = append(dst, `{"errno":0,"msg_type":"heartbeat","errmsg":"","data":{"heart_beat":"`...)
	dst = appendTime(dst, now, ' ', false)
	return append(dst, `"}}`...)
}

// AppendAuthB appends {"errno":errno,"msg_type":"auth","errmsg":msg}, the
// refusal sent before closing with 1008: ErrnoForbidden with MsgForbidden,
// ErrnoRepeat with MsgNoRepeat, ErrnoLimit with MsgConnectionLimit.
func AppendAuthB(dst []byte, errno int, msg string) []byte {
	return appendStatusB(dst, errno, "auth", msg)
}

// AppendErrorB appends {"errno":400,"msg_type":"error","errmsg":msg}; msg
// is MsgInvalidMessage for a frame DecodeB refused with ErrInvalidMessage.
func AppendErrorB(dst []byte, msg string) []byte {
	return appendStatusB(dst, ErrnoBadFrame, "error", msg)
}

// AppendCloseB appends {"errno":code,"msg_type":"close","errmsg":reason},
// sent to a subscribed connection before the server closes it with code.
func AppendCloseB(dst []byte, code int, reason string) []byte {
	return appendStatusB(dst, code, "close", reason)
}

func appendStatusB(dst []byte, errno int, msgType, msg string) []byte {
	dst = append(dst, `{"errno":`...)
	dst = appendInt(dst, int64(errno))
	dst = append(dst, `,"msg_type":"`...)
	dst = append(dst, msgType...) // a constant of this file
	dst = append(dst, `","errmsg":`...)
	dst = appendString(dst, msg)
	return append(dst, '}')
}

// AppendSubscribeB appends the reply to a subscribe: with reason "",
// {"errno":0,"msg_type":"subscribe","errmsg":"","data":{"subscribe":true,"msg":"ok"}};
// otherwise errno 400, "subscribe":false and reason in both msg and errmsg.
func AppendSubscribeB(dst []byte, reason string) []byte {
	return appendReplyB(dst, MsgTypeSubscribe, reason)
}

// AppendUnsubscribeB appends the reply to an unsubscribe, shaped as
// AppendSubscribeB's with "unsubscribe" for "subscribe".
func AppendUnsubscribeB(dst []byte, reason string) []byte {
	return appendReplyB(dst, MsgTypeUnsubscribe, reason)
}

func appendReplyB(dst []byte, msgType, reason string) []byte {
	if reason == "" {
		dst = append(dst, `{"errno":0,"msg_type":"`...)
		dst = append(dst, msgType...)
		dst = append(dst, `","errmsg":"","data":{"`...)
		dst = append(dst, msgType...)
		return append(dst, `":true,"msg":"ok"}}`...)
	}
	dst = append(dst, `{"errno":400,"msg_type":"`...)
	dst = append(dst, msgType...)
	dst = append(dst, `","errmsg":`...)
	dst = appendString(dst, reason)
	dst = append(dst, `,"data":{"`...)
	dst = append(dst, msgType...)
	dst = append(dst, `":false,"msg":`...)
	dst = appendString(dst, reason)
	return append(dst, "}}"...)
}
