package pool

import (
	"sync/atomic"
	"time"

	"github.com/sluicegw/sluice/lb"
)

// CircuitSettings configure a target's circuit breaker.
type CircuitSettings struct {
	Failures         int           // consecutive failures that open it
	FailureRatio     float64       // or this failure ratio over Window (0: off)
	Window           time.Duration // for the ratio
	MinRequests      int           // requests in Window before the ratio counts
	OpenFor          time.Duration // open -> half-open after this
	HalfOpenRequests int           // trial requests admitted while half-open
	Successes        int           // successful trials that close it
}

// CircuitState is where a circuit breaker is in its cycle. Its values are
// also those of the sluice_circuit_state gauge (0 closed, 1 open,
// 2 half-open): don't reorder them.
type CircuitState uint8

const (
	// CircuitClosed: requests flow and failures are counted.
	CircuitClosed CircuitState = iota
	// CircuitOpen: the target gets no requests until OpenFor has passed.
	CircuitOpen
	// CircuitHalfOpen: a few trial requests decide whether it closes again
	// or reopens.
	CircuitHalfOpen
)

// String names the state as the admin API, the logs and the dashboard
// show it: "closed", "open" or "half_open".
func (s CircuitState) String() string {
	switch s {
	case CircuitOpen:
		return "open"
	case CircuitHalfOpen:
		return "half_open"
	}
	return "closed"
}

// breaker is one target's circuit breaker (the state machine of seed 001,
// plus a failure-ratio trigger). All state is atomics: Allow and Record
// are on the request path and take no lock. The open -> half-open move is
// made by a timer, and the state is mirrored into the target's
// lb.CircuitOpen bit so every balancer skips an open target without asking.
type breaker struct {
	cfg    CircuitSettings
	target *lb.Target
	notify func(from, to CircuitState)

	state       atomic.Uint32 // a CircuitState
	consecutive atomic.Int32
	trials      atomic.Int32 // admitted while half-open
	successes   atomic.Int32 // of those trials
	openUntil   atomic.Int64 // unix ns, for Retry-After and display
	trips       atomic.Int64
	ratio       *window // a: requests, b: failures
	generation  atomic.Uint64
}

// newBreaker makes a closed breaker for t. notify (may be nil) is told of
// every state change.
func newBreaker(cfg CircuitSettings, t *lb.Target, notify func(from, to CircuitState)) *breaker {
	b := &breaker{cfg: cfg, target: t, notify: notify}
	if cfg.FailureRatio > 0 {
		b.ratio = newWindow(cfg.Window)
	}
	return b
}

// State is the current state.
func (b *breaker) State() CircuitState { return CircuitState(b.state.Load()) }

// cas moves the state from old to nw and reports whether it did.
func (b *breaker) cas(old, nw CircuitState) bool {
	return b.state.CompareAndSwap(uint32(old), uint32(nw))
}

// Trips counts how often it opened.
func (b *breaker) Trips() int64 { return b.trips.Load() }

// OpenUntil is when an open breaker turns half-open (zero if not open).
func (b *breaker) OpenUntil() time.Time {
	if b.State() != CircuitOpen {
		return time.Time{}
	}
	return time.Unix(0, b.openUntil.Load())
}

// Allow reports whether a request may go to the target now. While
// half-open it admits HalfOpenRequests trials and refuses the rest until
// their results are in.
func (b *breaker) Allow() bool {
	switch b.State() {
	case CircuitClosed:
		return true
	case CircuitHalfOpen:
		if b.trials.Add(1) <= int32(b.cfg.HalfOpenRequests) {
			return true
		}
		b.trials.Add(-1)
		return false
	}
	return false
}

// Record reports the outcome of a request that Allow let through.
func (b *breaker) Record(ok bool) {
	switch b.State() {
	case CircuitClosed:
		if ok {
			b.consecutive.Store(0)
		}
		tripped := !ok && int(b.consecutive.Add(1)) >= b.cfg.Failures
		if b.ratio != nil {
			now := lb.MonoNow()
			var fail int64
			if !ok {
				fail = 1
			}
			b.ratio.add(now, 1, fail)
			if reqs, fails := b.ratio.sums(now); !ok && reqs >= int64(b.cfg.MinRequests) &&
				float64(fails) >= b.cfg.FailureRatio*float64(reqs) {
				tripped = true
			}
		}
		if tripped {
			b.open(CircuitClosed)
		}
	case CircuitHalfOpen:
		if !ok {
			b.open(CircuitHalfOpen)
			return
		}
		if int(b.successes.Add(1)) >= b.cfg.Successes && b.cas(CircuitHalfOpen, CircuitClosed) {
			b.resetCounts()
			b.changed(CircuitHalfOpen, CircuitClosed)
		}
	}
}

func (b *breaker) open(from CircuitState) {
	if !b.cas(from, CircuitOpen) {
		return // someone else moved it first
	}
	b.trips.Add(1)
	b.openUntil.Store(time.Now().Add(b.cfg.OpenFor).UnixNano())
	b.target.SetState(lb.CircuitOpen, true)
	gen := b.generation.Add(1)
	time.AfterFunc(b.cfg.OpenFor, func() {
		// A Reset or a newer trip since then owns the state now.
		if b.generation.Load() == gen && b.cas(CircuitOpen, CircuitHalfOpen) {
			b.trials.Store(0)
			b.successes.Store(0)
			b.target.SetState(lb.CircuitOpen, false)
			b.changed(CircuitOpen, CircuitHalfOpen)
		}
	})
	b.changed(from, CircuitOpen)
}

// Reset closes the breaker now (admin action).
func (b *breaker) Reset() {
	b.generation.Add(1)
	from := CircuitState(b.state.Swap(uint32(CircuitClosed)))
	b.resetCounts()
	b.target.SetState(lb.CircuitOpen, false)
	if from != CircuitClosed {
		b.changed(from, CircuitClosed)
	}
}

func (b *breaker) resetCounts() {
	b.consecutive.Store(0)
	b.trials.Store(0)
	b.successes.Store(0)
	if b.ratio != nil {
		b.ratio.reset()
	}
}

func (b *breaker) changed(from, to CircuitState) {
	if b.notify != nil {
		b.notify(from, to)
	}
}
