package lb

import "sync/atomic"

// Weighted is nginx's smooth weighted round robin: weights 5,1,1 give
// a a b a c a a, not a a a a a b c. nginx runs the algorithm under a lock
// per pick; here the whole cycle (sum of weights / gcd picks) is computed
// once when the picker is built, and Pick just walks it with an atomic
// counter, so picks stay lock-free and produce the same sequence.
type Weighted struct {
	next     atomic.Uint64
	schedule []uint32
}

// NewWeighted precomputes the smooth schedule. Weights are at most 1000
// (config validation) so a cycle is at most 1000 x len(targets) entries.
func NewWeighted(targets []*Target) *Weighted {
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
	return &Weighted{schedule: schedule}
}

// Pick returns the next index of the smooth cycle.
func (w *Weighted) Pick(uint64) int {
	n := w.next.Add(1) - 1
	return int(w.schedule[n%uint64(len(w.schedule))])
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

var _ Picker = (*Weighted)(nil)
