package lb

import "sync/atomic"

// leastConn picks the usable target with the fewest in-flight requests
// relative to its weight. Ties are broken by starting the scan at a
// rotating offset, so equal targets share the load.
type leastConn struct {
	next    atomic.Uint64
	targets []*Target
}

// Pick scans all targets once: O(n), lock-free.
func (l *leastConn) Pick(p Pick) int {
	n := len(l.targets)
	start := int(l.next.Add(1) % uint64(n))
	best, bestScore := -1, 0.0
	for k := 0; k < n; k++ {
		i := (start + k) % n
		t := l.targets[i]
		if excluded(p, i) || !t.usable(p.PanicMode) {
			continue
		}
		score := float64(t.InFlight()+1) / (float64(max(t.Weight, 1)) * t.warmFactor())
		if best < 0 || score < bestScore {
			best, bestScore = i, score
		}
	}
	return best
}

var _ Picker = (*leastConn)(nil)
