package pool

import (
	"math/rand/v2"
	"time"
)

// Jitter varies d by a uniformly random amount within +-frac x d (frac
// 0.1: from 90% to 110% of d), so that waits started together (the health
// checks of many targets, the retries of many requests, a fleet's
// reconnects) spread out instead of arriving in step. d <= 0 or
// frac <= 0: d unchanged.
func Jitter(d time.Duration, frac float64) time.Duration {
	if frac <= 0 || d <= 0 {
		return d
	}
	return time.Duration(float64(d) * (1 + frac*(2*rand.Float64()-1)))
}
