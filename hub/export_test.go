package hub

import (
	"testing"
	"time"
)

// InitTestSignals turns the node's test signals on; call it before Run.
func (n *Node) InitTestSignals() { n.testSignals.leasesSynced.init() }

// WaitLeasesSynced returns the number of leases of the next successful
// resync, failing t if none comes within.
func (n *Node) WaitLeasesSynced(t testing.TB, within time.Duration) int {
	t.Helper()
	select {
	case v := <-n.testSignals.leasesSynced.ch:
		return v
	case <-time.After(within):
		t.Fatalf("no lease resync within %s", within)
		return 0
	}
}
