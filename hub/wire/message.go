package wire

// Messages of protocol A error frames and close reasons (SPEC §4.1, §4.3,
// §4.4); SSE error events use the same texts (SPEC §7).
const (
	MsgAPIKeyRequired       = "apiKey required"
	MsgInvalidKeyFormat     = "Invalid apiKey format"
	MsgInvalidAPIKey        = "Invalid API key"
	MsgConnectionLimit      = "Connection limit exceeded"
	MsgUnknownChannelPrefix = "Unknown channel: " // followed by the name; see UnknownChannel
	MsgInvalidMessage       = "invalid message"
	MsgTooManyInvalid       = "too many invalid messages"
	MsgSubscribeTimeout     = "subscribe timeout"
	MsgInvalidSince         = "Invalid since"
	MsgAPIKeyCannotChange   = "apiKey cannot change"
	MsgNotSubscribed        = "Not subscribed"
	MsgInvalidToken         = "Invalid or missing token"
	MsgSnapshotWithSince    = "snapshot and since are exclusive" // SPEC §10
	MsgSnapshotTooLarge     = "Snapshot too large"               // SPEC §10
	MsgInvalidFilter        = "Invalid filter"                   // SPEC §10
	MsgServiceUnavailable   = "Service unavailable"
	MsgClientDeactivated    = "client deactivated"           // SPEC §3
	MsgAPIKeyRevoked        = "api key revoked"              // SPEC §3
	MsgClosedByAdmin        = "closed by admin"              // SPEC §8
	MsgShutdown             = "server shutting down"         // close 1012; SPEC §9 names no reason
	MsgSlowConsumerPrefix   = "slow consumer; resume from "  // followed by a position; see SlowConsumer
	MsgTrimmedPrefix        = "events trimmed; resume from " // followed by a position; see Trimmed
)

// MsgTooManyPending refuses a connection, with HTTP 503 or code 1013, while
// too many others have not authenticated yet (issue 12).
const MsgTooManyPending = "too many unauthenticated connections; try again later"

// UnknownChannel is the error message for a subscribe naming a channel
// that is not attached.
func UnknownChannel(name string) string { return MsgUnknownChannelPrefix + name }

// SlowConsumer is the close of a session that fell more than HUB_MAX_LAG
// behind; pos is the last position sent, or the one it started from (SPEC
// §6).
func SlowConsumer(pos string) Close { return Close{CloseTryAgain, MsgSlowConsumerPrefix + pos} }

// Trimmed is the close of a session whose replay or catch-up found that
// retention deleted events it had not read yet (issue 12 §5): the resume
// from pos is answered with "recovered":false, and the client refetches
// its state.
func Trimmed(pos string) Close { return Close{CloseTryAgain, MsgTrimmedPrefix + pos} }
