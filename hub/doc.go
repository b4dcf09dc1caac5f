// Package hub turns the event log into deliveries. The Reader tails the log
// (waking on the adaptive doorbell, SPEC §2.2) and hands ordered batches to
// the Hub, which routes each event through its index (channel and client
// to sessions) to the Sessions allowed to see it; a Session queues its
// frames within bounded credits and, when it falls behind or resumes,
// catches up from the log on its own. Node keeps the node's leases and
// heartbeat, and Retention trims the log. Each long-lived part has
// Run(ctx), returns when ctx ends, and owns every goroutine it starts. The
// package knows neither HTTP nor WebSocket libraries: transports adapt to
// it in package api through Conn.
package hub
