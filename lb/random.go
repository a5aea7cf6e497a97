package lb

import "math/rand/v2"

// random picks uniformly among usable targets.
type random struct{ targets []*Target }

// Pick returns a random usable index.
func (r *random) Pick(p Pick) int {
	n := len(r.targets)
	for try := 0; try < 3; try++ {
		i := rand.IntN(n)
		if candidate(r.targets[i], p, i) {
			return i
		}
	}
	return scanFrom(r.targets, p, rand.IntN(n))
}

var _ Picker = (*random)(nil)
