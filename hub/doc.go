// Package hub turns the event log into deliveries. The Reader tails the log
// and hands ordered batches to its consumer; Retention trims the log. Each
// long-lived part has Run(ctx), returns when ctx ends, and owns every
// goroutine it starts. The package knows neither HTTP nor WebSocket
// libraries: transports adapt to it in package api.
package hub
