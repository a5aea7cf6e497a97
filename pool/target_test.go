package pool

import (
	"testing"
	"time"

	"github.com/sluicegw/sluice/lb"
)

func TestTargetStatusNamesTheMostSevereBlock(t *testing.T) {
	var tg Target
	if !tg.Usable() || tg.Status() != "healthy" {
		t.Fatalf("new target: usable %v, status %q", tg.Usable(), tg.Status())
	}
	for _, c := range []struct {
		bits uint32
		want string
	}{
		{lb.Unhealthy, "unhealthy"},
		{lb.Unhealthy | lb.Ejected, "ejected"},
		{lb.Unhealthy | lb.Ejected | lb.CircuitOpen, "circuit_open"},
	} {
		tg.SetState(lb.Unhealthy|lb.Ejected|lb.CircuitOpen, false)
		tg.SetState(c.bits, true)
		if tg.Usable() || tg.Status() != c.want {
			t.Errorf("bits %b: usable %v, status %q, want %q", c.bits, tg.Usable(), tg.Status(), c.want)
		}
	}
}

// The numbers are the sluice_circuit_state gauge's and the names the admin
// API's: both are read by dashboards and alerts.
func TestCircuitStateValuesAndNames(t *testing.T) {
	for s, want := range []string{"closed", "open", "half_open"} {
		if got := CircuitState(s).String(); got != want {
			t.Errorf("CircuitState(%d) = %q, want %q", s, got, want)
		}
	}
}

func TestTargetWithoutCircuit(t *testing.T) {
	var tg Target
	tg.ResetCircuit()
	if tg.HasCircuit() || tg.CircuitState() != CircuitClosed || tg.CircuitTrips() != 0 || !tg.CircuitOpenUntil().IsZero() {
		t.Fatal("a target without a breaker must read as closed, never tripped")
	}
	tg.breaker = newBreaker(CircuitSettings{Failures: 1, OpenFor: time.Minute, HalfOpenRequests: 1, Successes: 1}, &tg.Target, nil)
	tg.breaker.Record(false)
	if !tg.HasCircuit() || tg.CircuitState() != CircuitOpen || tg.CircuitTrips() != 1 || tg.CircuitOpenUntil().IsZero() || tg.Usable() {
		t.Fatalf("tripped: state %s, trips %d", tg.CircuitState(), tg.CircuitTrips())
	}
	tg.ResetCircuit()
	if tg.CircuitState() != CircuitClosed || !tg.Usable() {
		t.Fatalf("after reset: state %s, usable %v", tg.CircuitState(), tg.Usable())
	}
}
