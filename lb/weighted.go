package lb

import "sync/atomic"

// weighted is nginx's smooth weighted round robin: weights 5,1,1 give
// a a b a c a a, not a a a a a b c. nginx runs the algorithm under a lock
// per pick; here the whole cycle (sum of weights / gcd picks) is computed
// once when the picker is built, and Pick walks it with an atomic counter,
// so picks stay lock-free and produce the same sequence. Unusable targets
// are skipped by walking on.
type weighted struct {
	next     atomic.Uint64
	schedule []uint32
	targets  []*Target
}

// newWeighted precomputes the smooth schedule. Weights are at most 1000
// (config validation) so a cycle is at most 1000 x len(targets) entries.
func newWeighted(targets []*Target) *weighted {
	g := 0
	for _, t := range targets {
		g = gcd(g, max(t.Weight, 1))
	}
	weights := make([]int, len(targets))
	total := 0
	for i, t := range targets {
		weights[i] = max(t.Weight, 1) / g
		total += weights[i]
	}
	current := make([]int, len(targets))
	schedule := make([]uint32, total)
	for k := range schedule {
		best := 0
		for i := range current {
			current[i] += weights[i]
			if current[i] > current[best] {
				best = i
			}
		}
		current[best] -= total
		schedule[k] = uint32(best)
	}
	return &weighted{schedule: schedule, targets: targets}
}

// Pick returns the next usable index of the smooth cycle.
func (w *weighted) Pick(p Pick) int {
	n := uint64(len(w.schedule))
	start := w.next.Add(1) - 1
	// Walking at most len(targets) entries past the start normally finds a
	// usable one; the scan is the fallback when most are blocked.
	for k := uint64(0); k < uint64(len(w.targets)); k++ {
		i := int(w.schedule[(start+k)%n])
		if candidate(w.targets[i], p, i) {
			return i
		}
	}
	return scanFrom(w.targets, p, int(w.schedule[start%n]))
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

var _ Picker = (*weighted)(nil)
