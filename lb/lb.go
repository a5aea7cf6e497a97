// Package lb chooses an upstream target for a request.
//
// A Picker is built once per target set (when a snapshot or a discovery
// update is built) over an immutable slice of *Target and is then only
// read: Pick never blocks, never allocates and touches only atomics.
// Per-target load counters live in the Target itself so every picker, and
// every snapshot sharing the target, sees the same numbers.
//
// lb imports nothing of sluice's.
package lb

import (
	"fmt"
	"sync/atomic"
)

// Target is the balancing state of one backend. Pool types embed it.
type Target struct {
	// Weight is the relative share for the weighted picker (>= 1).
	Weight int
	// inFlight counts requests sent and not yet finished.
	inFlight atomic.Int64
}

// Begin marks a request to this target as started; call Done when it ends.
func (t *Target) Begin() { t.inFlight.Add(1) }

// Done marks a request to this target as finished.
func (t *Target) Done() { t.inFlight.Add(-1) }

// InFlight is the number of requests to this target now.
func (t *Target) InFlight() int64 { return t.inFlight.Load() }

// Picker chooses one of the targets it was built over and returns its
// index. key is a per-request hash for balancers that use one (ignored by
// the others).
type Picker interface {
	Pick(key uint64) int
}

// New builds the named picker over targets (len >= 1).
func New(name string, targets []*Target) (Picker, error) {
	if len(targets) == 0 {
		return nil, fmt.Errorf("lb: no targets")
	}
	switch name {
	case "round_robin", "":
		return &RoundRobin{n: uint64(len(targets))}, nil
	case "weighted":
		return NewWeighted(targets), nil
	case "random":
		return Random{n: uint64(len(targets))}, nil
	}
	return nil, fmt.Errorf("lb: unknown balancer %q", name)
}
