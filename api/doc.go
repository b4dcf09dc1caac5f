// Package api is the hub's HTTP surface: New builds the echo instance with
// every route in one function. It knows neither pgx nor the schema; what it
// needs from the rest of the hub comes in through Config as small
// interfaces and functions. Handlers are safe for concurrent use.
package api
