package lb

import (
	"math"
	"math/rand/v2"
)

// p2c is the power of two choices over peak-EWMA latency x load: pick two
// usable targets at random and take the one with the lower
// (in-flight + 1) x latency / weight. It reacts to a slow or overloaded
// target within a few requests, costs two random numbers per pick, and
// avoids the herding of a strict least-loaded choice. Targets with no
// latency sample yet score as the fastest, so new targets get tried.
type p2c struct{ targets []*Target }

// Pick chooses the better of two distinct random candidates.
func (c *p2c) Pick(p Pick) int {
	n := len(c.targets)
	a := c.draw(p, -1)
	if a < 0 {
		return scanFrom(c.targets, p, rand.IntN(n))
	}
	b := c.draw(p, a)
	if b < 0 {
		return a
	}
	now := MonoNow()
	if c.score(b, now) < c.score(a, now) {
		return b
	}
	return a
}

// draw draws a usable index other than not (-1: none to avoid); with
// not >= 0 it draws from the n-1 others, so the two candidates differ.
func (c *p2c) draw(p Pick, not int) int {
	n := len(c.targets)
	for try := 0; try < 3; try++ {
		var i int
		if not < 0 {
			i = rand.IntN(n)
		} else if n > 1 {
			i = (not + 1 + rand.IntN(n-1)) % n
		} else {
			return -1
		}
		if !excluded(p, i) && c.targets[i].usable(p.PanicMode) {
			return i
		}
	}
	return -1
}

// score is (in flight + 1) x latency / weight. The latency decays with
// the time since the target's last sample, so a target that was avoided
// for being slow is tried again after a while instead of starving with a
// stale bad score.
func (c *p2c) score(i int, now int64) float64 {
	t := c.targets[i]
	lat := float64(t.Latency())
	if lat == 0 {
		lat = 1 // untried: as fast as can be
	} else if dt := float64(now - t.ewmaAt.Load()); dt > 0 {
		lat *= math.Exp(-dt / ewmaDecay)
	}
	return float64(t.InFlight()+1) * lat / (float64(max(t.Weight, 1)) * t.warmFactor())
}

var _ Picker = (*p2c)(nil)
