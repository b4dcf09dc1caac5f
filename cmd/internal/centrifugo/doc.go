// Package centrifugo runs Centrifugo next to the hub on the same database,
// so that the load tools can compare the two: it builds the pinned version
// from its module's source, holds the outbox and the trigger that feed
// Centrifugo's PostgreSQL consumer, writes the configuration, runs the
// process and signs the clients' connection tokens.
//
// None of Centrifugo's code is part of this repository: Build fetches and
// compiles it at run time. A Server is owned by the goroutine that started
// it; Stop may be called once.
package centrifugo
