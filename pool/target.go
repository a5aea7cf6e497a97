package pool

import (
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/sluicegw/sluice/lb"
	"github.com/valyala/fasthttp"
)

// Target is one backend with its connection pool and its state.
//
// What decides whether it gets traffic (health, ejection, circuit) is
// kept as bits on the embedded lb.Target, where the balancers read it;
// code outside pool asks the methods below instead of decoding them.
type Target struct {
	lb.Target
	// URL is the target as configured ("http://127.0.0.1:9001").
	URL string
	// Scheme is "http" or "https": the scheme the request URI must carry
	// when sent with Client (fasthttp refuses a URI whose scheme differs
	// from the HostClient's), whatever the client used. Read only.
	Scheme []byte
	// Host is host:port, used when a route rewrites Host to the target.
	Host string
	// Upstream is the name of the pool the target belongs to.
	Upstream string
	// Client sends requests to this target.
	Client *fasthttp.HostClient

	// streamFailures: see StreamFailures.
	streamFailures atomic.Uint64

	key       string
	settings  Settings
	log       *slog.Logger
	stopCheck func()
	breaker   *breaker // nil: the upstream has no circuit breaker
	outlier   outlierState
	health    healthState
}

// StreamFailures counts this target's response bodies that broke off after
// their head had been handed to the proxy (a reset, a truncated body, a
// malformed chunk, a read timeout mid-body), so the client got a status
// line and a cut-off body. The proxy has already reported such a try as a
// success; this is the place that knows better. The stream's Read error
// wraps ErrStreamBroken at the same moment. A client that hangs up is not
// counted.
func (t *Target) StreamFailures() uint64 { return t.streamFailures.Load() }

// Usable reports whether a balancer may pick the target outside panic
// mode: healthy, not ejected, circuit not open. A half-open circuit
// counts as usable (it admits its trial requests).
func (t *Target) Usable() bool { return t.State() == 0 }

// Status names what keeps the target from traffic, most severe first:
// "circuit_open", "ejected", "unhealthy", or "healthy" when nothing does
// (the same test as Usable).
func (t *Target) Status() string {
	s := t.State()
	switch {
	case s&lb.CircuitOpen != 0:
		return "circuit_open"
	case s&lb.Ejected != 0:
		return "ejected"
	case s&lb.Unhealthy != 0:
		return "unhealthy"
	}
	return "healthy"
}

// HasCircuit reports whether the target's upstream has a circuit breaker.
// Without one, the Circuit* methods report a closed circuit that never
// tripped.
func (t *Target) HasCircuit() bool { return t.breaker != nil }

// CircuitState is the state of the target's circuit breaker.
func (t *Target) CircuitState() CircuitState {
	if t.breaker == nil {
		return CircuitClosed
	}
	return t.breaker.State()
}

// CircuitTrips counts how often the target's circuit opened since the
// target was built.
func (t *Target) CircuitTrips() int64 {
	if t.breaker == nil {
		return 0
	}
	return t.breaker.Trips()
}

// CircuitOpenUntil is when an open circuit turns half-open (zero when it
// is not open).
func (t *Target) CircuitOpenUntil() time.Time {
	if t.breaker == nil {
		return time.Time{}
	}
	return t.breaker.OpenUntil()
}

// ResetCircuit closes the target's circuit now (an admin action); a
// pending open -> half-open timer no longer applies. No-op without a
// circuit breaker.
func (t *Target) ResetCircuit() {
	if t.breaker != nil {
		t.breaker.Reset()
	}
}
