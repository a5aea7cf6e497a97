package testutil

import (
	"testing"
	"time"
)

// WaitFor polls cond every 10ms for up to 15s: for changes made by timers,
// watchers and other processes. It fails the test with what it waited for.
func WaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	WaitForWithin(t, what, 15*time.Second, cond)
}

// WaitForWithin is WaitFor with a bound of its own (one the thing tested
// promises, such as a unit's TimeoutStopSec).
func WaitForWithin(t testing.TB, what string, within time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s (%v)", what, within)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
