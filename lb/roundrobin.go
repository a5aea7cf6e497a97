package lb

import "sync/atomic"

// roundRobin takes targets in turn, skipping the ones that can't be used.
type roundRobin struct {
	next    atomic.Uint64
	targets []*Target
}

// Pick returns the next usable index in turn.
func (r *roundRobin) Pick(p Pick) int {
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

var _ Picker = (*roundRobin)(nil)
