package wire

// WebSocket close codes the server uses (SPEC §4.2); SSE reports the same
// numbers in its error event (SPEC §7).
const (
	CloseNormal   = 1000
	ClosePolicy   = 1008 // auth, limits, timeouts, revocation, kick
	CloseTooBig   = 1009 // frame over HUB_MAX_MESSAGE_BYTES
	CloseInternal = 1011
	CloseRestart  = 1012 // graceful shutdown: reconnect elsewhere and resume
	CloseTryAgain = 1013 // slow consumer, database unavailable
)

// Close is a close's code with its reason: they travel together, so that
// no reason goes out with another code than its own.
type Close struct {
	Code   int
	Reason string
}

// The closes the server sends for reasons of its own (SPEC §3, §2.3
// "Outages", §8, §9); the others are built from a message: Refusal,
// SlowConsumer, Trimmed.
var (
	CloseShutdown          = Close{CloseRestart, MsgShutdown}
	CloseUnavailable       = Close{CloseTryAgain, MsgServiceUnavailable}
	CloseKeyRevoked        = Close{ClosePolicy, MsgAPIKeyRevoked}
	CloseClientDeactivated = Close{ClosePolicy, MsgClientDeactivated}
	CloseKicked            = Close{ClosePolicy, MsgClosedByAdmin}
)

// Refusal is the close after a refused request: 1008 with the error's
// message (SPEC §4.1).
func Refusal(msg string) Close { return Close{ClosePolicy, msg} }

// maxCloseReasonBytes is what a close frame holds besides its code: a
// control frame's payload is at most 125 bytes (RFC 6455 §5.5).
const maxCloseReasonBytes = 123

// CloseReason cuts s to the 123 bytes a WebSocket close frame can carry,
// on a UTF-8 boundary, so that a long reason (an unknown channel's name)
// cannot make the close frame invalid.
func CloseReason(s string) string {
	if len(s) <= maxCloseReasonBytes {
		return s
	}
	n := maxCloseReasonBytes
	for n > 0 && s[n]&0xC0 == 0x80 { // s[n] continues the rune that s[:n] cuts
		n--
	}
	return s[:n]
}
