package lb

import (
	"math/rand/v2"
	"sync/atomic"
)

// RoundRobin takes targets in turn.
type RoundRobin struct {
	next atomic.Uint64
	n    uint64
}

// Pick returns the next index in turn.
func (r *RoundRobin) Pick(uint64) int { return int((r.next.Add(1) - 1) % r.n) }

// Random picks uniformly.
type Random struct{ n uint64 }

// Pick returns a uniformly random index.
func (r Random) Pick(uint64) int { return int(rand.Uint64N(r.n)) }

var (
	_ Picker = (*RoundRobin)(nil)
	_ Picker = Random{}
)
