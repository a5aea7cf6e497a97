package lb

import (
	"math"
	"math/rand/v2"
	"sync/atomic"
	"time"
)

// Blocking reasons, as bits of Target.state.
const (
	// Unhealthy: failing active health checks.
	Unhealthy uint32 = 1 << iota
	// Ejected: taken out by passive outlier detection for a while.
	Ejected
	// CircuitOpen: the target's circuit breaker is open.
	CircuitOpen
)

// Target is the balancing state of one backend. Pool types embed it.
type Target struct {
	// Weight is the relative share (>= 1).
	Weight int

	state    atomic.Uint32
	inFlight atomic.Int64
	// ewma is the peak-EWMA latency in nanoseconds (float64 bits), ewmaAt
	// the monotonic time of its last update.
	ewma   atomic.Uint64
	ewmaAt atomic.Int64
	// warmFrom/warmUntil bound a slow-start ramp (monotonic ns; 0: none).
	warmFrom  atomic.Int64
	warmUntil atomic.Int64
}

// Begin marks a request to this target as started; call Done when it ends.
func (t *Target) Begin() { t.inFlight.Add(1) }

// Done marks a request to this target as finished.
func (t *Target) Done() { t.inFlight.Add(-1) }

// InFlight is the number of requests to this target now.
func (t *Target) InFlight() int64 { return t.inFlight.Load() }

// State returns the blocking bits now set.
func (t *Target) State() uint32 { return t.state.Load() }

// SetState sets or clears the given bits and reports whether the target
// went from blocked to usable (so the caller can start slow start).
func (t *Target) SetState(bits uint32, on bool) (cameBack bool) {
	for {
		old := t.state.Load()
		nw := old &^ bits
		if on {
			nw = old | bits
		}
		if t.state.CompareAndSwap(old, nw) {
			return old != 0 && nw == 0
		}
	}
}

// Block sets bit and reports whether this call set it (false: it was
// already set), so exactly one of several racing callers acts on it.
func (t *Target) Block(bit uint32) bool {
	for {
		old := t.state.Load()
		if old&bit != 0 {
			return false
		}
		if t.state.CompareAndSwap(old, old|bit) {
			return true
		}
	}
}

// usable reports whether a pick may choose t.
func (t *Target) usable(panicMode bool) bool {
	s := t.state.Load()
	if panicMode {
		return s&CircuitOpen == 0
	}
	return s == 0
}

// ---- latency (peak EWMA, as in Finagle and linkerd) ----

// ewmaDecay is the time constant of the latency average: samples older
// than a few decays no longer matter.
const ewmaDecay = float64(10 * time.Second)

var epoch = time.Now()

// MonoNow is a monotonic clock reading in nanoseconds since the process
// started: cheaper to store in an atomic.Int64 than a time.Time, and
// immune to wall-clock steps. Readings compare only with each other.
func MonoNow() int64 { return int64(time.Since(epoch)) }

// MonoAt is MonoNow for a time already read with time.Now (its monotonic
// reading): a caller that has the time at hand spares a clock read.
func MonoAt(t time.Time) int64 { return int64(t.Sub(epoch)) }

// Observe records one request's latency. A slower sample than the average
// replaces it at once (peak), so a target that turns slow is avoided
// immediately; faster samples pull the average down with exponential decay.
func (t *Target) Observe(rtt time.Duration) { t.ObserveAt(rtt, MonoNow()) }

// ObserveAt is Observe for a sample taken at now (a MonoNow or MonoAt
// reading).
func (t *Target) ObserveAt(rtt time.Duration, now int64) {
	sample := float64(rtt)
	for {
		oldBits := t.ewma.Load()
		old := math.Float64frombits(oldBits)
		nw := sample
		if old != 0 && sample < old {
			dt := float64(now - t.ewmaAt.Load())
			w := math.Exp(-max(dt, 0) / ewmaDecay)
			nw = old*w + sample*(1-w)
		}
		if t.ewma.CompareAndSwap(oldBits, math.Float64bits(nw)) {
			t.ewmaAt.Store(now)
			return
		}
	}
}

// Latency is the current peak-EWMA latency (0 before any sample).
func (t *Target) Latency() time.Duration {
	return time.Duration(math.Float64frombits(t.ewma.Load()))
}

// ---- slow start ----

// StartWarmup makes the target ramp from a small share to its full share
// over d (a target that just recovered should not take a full share of
// traffic with cold caches and connection pools).
func (t *Target) StartWarmup(d time.Duration) {
	if d <= 0 {
		return
	}
	now := MonoNow()
	t.warmFrom.Store(now)
	t.warmUntil.Store(now + int64(d))
}

// warmFactor is the share (0.1..1] of its normal traffic a target takes.
func (t *Target) warmFactor() float64 {
	until := t.warmUntil.Load()
	if until == 0 {
		return 1
	}
	now := MonoNow()
	if now >= until {
		t.warmUntil.Store(0)
		return 1
	}
	from := t.warmFrom.Load()
	return max(0.1, float64(now-from)/float64(until-from))
}

// admit applies slow start to a candidate: a warming target is taken with
// probability equal to its ramp factor.
func (t *Target) admit() bool {
	if t.warmUntil.Load() == 0 {
		return true
	}
	return rand.Float64() < t.warmFactor()
}
