package hub

// testSignal tells a test that something happened inside a running part,
// so that the test waits for the event instead of polling for its effects
// (river's testsignal). It does nothing until a test calls init, before
// the part runs.
type testSignal[T any] struct{ ch chan T }

// testSignalBuffer is how many signals wait for a test before more are
// dropped: a test waits for the few it expects.
const testSignalBuffer = 64

func (s *testSignal[T]) init() { s.ch = make(chan T, testSignalBuffer) }

func (s *testSignal[T]) signal(v T) {
	if s.ch == nil {
		return
	}
	select {
	case s.ch <- v:
	default:
	}
}

// nodeTestSignals are a Node's test signals.
type nodeTestSignals struct {
	// leasesSynced: a LeaseSync succeeded; the value is how many leases
	// it wrote.
	leasesSynced testSignal[int]
}
