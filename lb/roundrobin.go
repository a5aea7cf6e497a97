package lb

import (
	"math/rand/v2"
	"sync/atomic"
)

// RoundRobin takes targets in turn, skipping the ones that can't be used.
type RoundRobin struct {
	next    atomic.Uint64
	targets []*Target
}

// Pick returns the next usable index in turn.
func (r *RoundRobin) Pick(p Pick) int {
	n := uint64(len(r.targets))
	start := r.next.Add(1) - 1
	for k := uint64(0); k < n; k++ {
		i := int((start + k) % n)
		if candidate(r.targets[i], p, i) {
			return i
		}
	}
	return scanFrom(r.targets, p, int(start%n))
}

// Random picks uniformly among usable targets.
type Random struct{ targets []*Target }

// Pick returns a random usable index.
func (r *Random) Pick(p Pick) int {
	n := len(r.targets)
	for try := 0; try < 3; try++ {
		i := rand.IntN(n)
		if candidate(r.targets[i], p, i) {
			return i
		}
	}
	return scanFrom(r.targets, p, rand.IntN(n))
}

var (
	_ Picker = (*RoundRobin)(nil)
	_ Picker = (*Random)(nil)
)
