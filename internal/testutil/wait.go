package testutil

import (
	"testing"
	"time"
)

// WaitFor polls cond every 10ms for up to 15s: for changes made by timers,
// watchers and other processes. It fails the test with what it waited for.
func WaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	WaitForWithin(t, 15*time.Second, what, cond)
}

// WaitForWithin is WaitFor with another bound, for what is slow to start
// on a loaded machine (a browser, a Prometheus) or a bound the thing
// tested promises (a unit's TimeoutStopSec).
func WaitForWithin(t testing.TB, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s (%v)", what, limit)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
