// Package wire owns the bytes the hub exchanges with its clients: the frames
// of WebSocket protocol A (SPEC §4), of the EOSPark-compatible protocol B
// (SPEC §5) and of the SSE transport (SPEC §7), the decoders of what clients
// send, API key formats (SPEC §3), and the close codes and client-visible
// messages as named values.
//
// An event is encoded once per protocol and the same bytes go to every
// session (SPEC §6), so the encoders append to a caller's []byte without
// reflection and allocate nothing when it has room. Payload and Old are
// already-valid JSON (jsonb from the log) and pass through untouched.
//
// The package is a leaf: it imports only the standard library, holds no
// state, and every function is safe for concurrent use.
package wire
