package pool

import (
	"sync/atomic"
	"time"

	"github.com/sluicegw/sluice/lb"
)

// CircuitSettings configure a Breaker.
type CircuitSettings struct {
	Failures         int           // consecutive failures that open it
	FailureRatio     float64       // or this failure ratio over Window (0: off)
	Window           time.Duration // for the ratio
	MinRequests      int           // requests in Window before the ratio counts
	OpenFor          time.Duration // open -> half-open after this
	HalfOpenRequests int           // trial requests admitted while half-open
	Successes        int           // successful trials that close it
}

// Circuit states.
const (
	Closed uint32 = iota
	Open
	HalfOpen
)

// StateName names a circuit state for humans and JSON.
func StateName(s uint32) string {
	switch s {
	case Open:
		return "open"
	case HalfOpen:
		return "half_open"
	}
	return "closed"
}

// Breaker is one target's circuit breaker (the state machine of seed 001,
// plus a failure-ratio trigger). All state is atomics: Allow and Record
// are on the request path and take no lock. The open -> half-open move is
// made by a timer, and the state is mirrored into the target's
// lb.CircuitOpen bit so every balancer skips an open target without asking.
type Breaker struct {
	cfg    CircuitSettings
	target *lb.Target
	notify func(from, to uint32)

	state       atomic.Uint32
	consecutive atomic.Int32
	trials      atomic.Int32 // admitted while half-open
	successes   atomic.Int32 // of those trials
	openUntil   atomic.Int64 // unix ns, for Retry-After and display
	trips       atomic.Int64
	ratio       *window // a: requests, b: failures
	generation  atomic.Uint64
}

// NewBreaker makes a closed breaker for t. notify (may be nil) is told of
// every state change.
func NewBreaker(cfg CircuitSettings, t *lb.Target, notify func(from, to uint32)) *Breaker {
	b := &Breaker{cfg: cfg, target: t, notify: notify}
	if cfg.FailureRatio > 0 {
		b.ratio = newWindow(cfg.Window)
	}
	return b
}

// State is the current state.
func (b *Breaker) State() uint32 { return b.state.Load() }

// Trips counts how often it opened.
func (b *Breaker) Trips() int64 { return b.trips.Load() }

// OpenUntil is when an open breaker turns half-open (zero if not open).
func (b *Breaker) OpenUntil() time.Time {
	if b.state.Load() != Open {
		return time.Time{}
	}
	return time.Unix(0, b.openUntil.Load())
}

// Allow reports whether a request may go to the target now. While
// half-open it admits HalfOpenRequests trials and refuses the rest until
// their results are in.
func (b *Breaker) Allow() bool {
	switch b.state.Load() {
	case Closed:
		return true
	case HalfOpen:
		if b.trials.Add(1) <= int32(b.cfg.HalfOpenRequests) {
			return true
		}
		b.trials.Add(-1)
		return false
	}
	return false
}

// Record reports the outcome of a request that Allow let through.
func (b *Breaker) Record(ok bool) {
	switch b.state.Load() {
	case Closed:
		if ok {
			b.consecutive.Store(0)
		}
		tripped := !ok && int(b.consecutive.Add(1)) >= b.cfg.Failures
		if b.ratio != nil {
			now := nowNano()
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
			b.open(Closed)
		}
	case HalfOpen:
		if !ok {
			b.open(HalfOpen)
			return
		}
		if int(b.successes.Add(1)) >= b.cfg.Successes && b.state.CompareAndSwap(HalfOpen, Closed) {
			b.resetCounts()
			b.changed(HalfOpen, Closed)
		}
	}
}

func (b *Breaker) open(from uint32) {
	if !b.state.CompareAndSwap(from, Open) {
		return // someone else moved it first
	}
	b.trips.Add(1)
	b.openUntil.Store(time.Now().Add(b.cfg.OpenFor).UnixNano())
	b.target.SetState(lb.CircuitOpen, true)
	gen := b.generation.Add(1)
	time.AfterFunc(b.cfg.OpenFor, func() {
		// A Reset or a newer trip since then owns the state now.
		if b.generation.Load() == gen && b.state.CompareAndSwap(Open, HalfOpen) {
			b.trials.Store(0)
			b.successes.Store(0)
			b.target.SetState(lb.CircuitOpen, false)
			b.changed(Open, HalfOpen)
		}
	})
	b.changed(from, Open)
}

// Reset closes the breaker now (admin action).
func (b *Breaker) Reset() {
	b.generation.Add(1)
	from := b.state.Swap(Closed)
	b.resetCounts()
	b.target.SetState(lb.CircuitOpen, false)
	if from != Closed {
		b.changed(from, Closed)
	}
}

func (b *Breaker) resetCounts() {
	b.consecutive.Store(0)
	b.trials.Store(0)
	b.successes.Store(0)
	if b.ratio != nil {
		b.ratio.reset()
	}
}

func (b *Breaker) changed(from, to uint32) {
	if b.notify != nil {
		b.notify(from, to)
	}
}
