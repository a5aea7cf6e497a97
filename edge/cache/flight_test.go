package cache

import (
	"testing"
	"time"
)

// A flight takes waiters until its leader is done; past Lead, a new
// request leads a flight of its own (a leader relaying a long stream is
// not waited for forever), and the old leader's Done leaves the new
// flight in place.
func TestFlightsLeadBound(t *testing.T) {
	f := &Flights{Lead: time.Hour}
	a, lead := f.Join(1)
	if !lead {
		t.Fatal("first Join does not lead")
	}
	if b, lead := f.Join(1); lead || b != a {
		t.Fatal("second Join within Lead does not wait for the first")
	}
	e := &Entry{Key: "k"}
	f.Done(1, a, e)
	if got := a.Wait(time.Second); got != e {
		t.Fatalf("waiter got %v", got)
	}

	f = &Flights{Lead: time.Nanosecond}
	a, _ = f.Join(2)
	time.Sleep(time.Millisecond) // past a 1ns Lead; not a timing assertion
	b, lead := f.Join(2)
	if !lead || b == a {
		t.Fatal("a Join past Lead waits for the old flight")
	}
	f.Done(2, a, nil)
	if f.m[2] != b {
		t.Fatal("the old leader's Done removed the new flight")
	}
	f.Done(2, b, nil)
	if len(f.m) != 0 {
		t.Fatal("a flight left behind")
	}
}
