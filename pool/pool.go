package pool

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"sync/atomic"
	"time"

	"github.com/sluicegw/sluice/lb"
	"github.com/valyala/fasthttp"
)

// Errors a pick can end with.
var (
	// ErrNoTarget: no target may be used (all unhealthy with panic mode
	// off, or all excluded).
	ErrNoTarget = errors.New("pool: no target available")
	// ErrCircuitOpen: every target's circuit is open (or half-open and
	// full of trials).
	ErrCircuitOpen = errors.New("pool: every target's circuit is open")
)

// Settings shape the HostClient and the protection of every target in a
// pool. They are part of a target's registry key: changing them builds
// new targets.
type Settings struct {
	ConnectTimeout time.Duration
	ReadTimeout    time.Duration
	WriteTimeout   time.Duration
	IdleTimeout    time.Duration
	MaxConns       int
	MaxConnWait    time.Duration
	// HeaderBufferBytes sizes the response read buffer, which also caps the
	// size of a response head fasthttp can read.
	HeaderBufferBytes int
	// BufferBodyBytes: response bodies of known length up to this are read
	// whole (one write to the client, no allocation once buffers are
	// warm); larger, chunked and close-delimited ones stream to the client
	// with backpressure, so a slow client holds a few buffers, not its
	// whole answer. Request bodies are not the pool's business: the proxy
	// decides which ones it buffers. Zero streams every body that has
	// content. (edge fills it from server.buffer_response_bytes.)
	BufferBodyBytes int

	// TLS configures https:// targets; nil: system roots, the target's
	// host as server name, no client certificate. Ignored for http://
	// targets. In the registry key by content (ClientTLS.Key).
	TLS *ClientTLS

	Health    *HealthSettings  // nil: no active checks
	Outlier   OutlierSettings  // ConsecutiveFailures <= 0: off
	Circuit   *CircuitSettings // nil: no breaker
	SlowStart time.Duration
}

// OutlierSettings configure passive ejection.
type OutlierSettings struct {
	ConsecutiveFailures int
	BaseEjection        time.Duration
	MaxEjection         time.Duration
	MaxEjectionPercent  int
}

// Pool is a named, immutable set of targets and the picker over them.
type Pool struct {
	Name    string
	Targets []*Target
	Budget  *retryBudget
	picker  lb.Picker
	// panicMode: when no healthy target is left, pick among unhealthy
	// and ejected ones rather than fail (open circuits still block).
	panicMode bool
	// HashesKey reports whether Pick uses Key (ip_hash, consistent_hash),
	// so the proxy computes one only then.
	HashesKey bool
}

// TargetSpec describes one target of a pool being built.
type TargetSpec struct {
	URL    string
	Weight int
}

// PoolSpec describes a pool being built.
type PoolSpec struct {
	Name        string
	Balancer    string
	BoundedLoad float64
	Targets     []TargetSpec
	Settings    Settings
	PanicMode   bool
	RetryBudget float64
	MinRetries  int
}

// Build makes a pool, taking targets from (and adding them to) reg so
// unchanged targets keep their state across reloads.
func Build(reg *Registry, spec PoolSpec) (*Pool, error) {
	p := &Pool{
		Name:      spec.Name,
		panicMode: spec.PanicMode,
		Budget:    reg.budget(spec.Name, spec.RetryBudget, spec.MinRetries),
		HashesKey: spec.Balancer == "ip_hash" || spec.Balancer == "consistent_hash",
	}
	if len(spec.Targets) > 64 {
		// lb.Pick excludes tried targets with a 64-bit mask; beyond that a
		// retry may land on a target it already tried. Allowed, noted.
		reg.log.Warn("upstream has more than 64 targets: retries may repeat a target", "upstream", spec.Name)
	}
	lbTargets := make([]*lb.Target, 0, len(spec.Targets))
	names := make([]string, 0, len(spec.Targets))
	for _, ts := range spec.Targets {
		t, err := reg.target(spec.Name, ts.URL, ts.Weight, spec.Settings)
		if err != nil {
			return nil, fmt.Errorf("upstream %q: %w", spec.Name, err)
		}
		p.Targets = append(p.Targets, t)
		lbTargets = append(lbTargets, &t.Target)
		names = append(names, t.URL)
	}
	if len(lbTargets) == 0 {
		// A discovered service with no passing instance: every pick fails
		// with ErrNoTarget until discovery finds one.
		return p, nil
	}
	picker, err := lb.New(spec.Balancer, lbTargets, lb.Options{BoundedLoad: spec.BoundedLoad, Names: names})
	if err != nil {
		return nil, fmt.Errorf("upstream %q: %w", spec.Name, err)
	}
	p.picker = picker
	return p, nil
}

// Pick chooses a target for one try. exclude is a bitmask of target
// indexes already tried by this request. It applies, in order: health and
// ejection (ignored in panic mode when nothing else is left), open
// circuits (never ignored), and half-open trial limits.
func (p *Pool) Pick(key, exclude uint64) (*Target, int, error) {
	if p.picker == nil {
		return nil, -1, ErrNoTarget
	}
	pick := lb.Pick{Key: key, Exclude: exclude}
	for range p.Targets {
		i := p.picker.Pick(pick)
		if i < 0 && p.panicMode && !pick.PanicMode {
			pick.PanicMode = true
			i = p.picker.Pick(pick)
		}
		if i < 0 {
			break
		}
		t := p.Targets[i]
		if t.breaker == nil || t.breaker.Allow() {
			return t, i, nil
		}
		// Half-open and out of trials: treat as tried and look again.
		if i < 64 {
			pick.Exclude |= 1 << uint(i)
		}
	}
	if p.allCircuitsOpen() {
		return nil, -1, ErrCircuitOpen
	}
	return nil, -1, ErrNoTarget
}

func (p *Pool) allCircuitsOpen() bool {
	if len(p.Targets) == 0 {
		return false
	}
	for _, t := range p.Targets {
		if t.breaker == nil || t.breaker.State() == CircuitClosed {
			return false
		}
	}
	return true
}

// RetryAfter is how long until the first open circuit turns half-open
// (for a 503's Retry-After), at least one second.
func (p *Pool) RetryAfter() time.Duration {
	var soonest time.Time
	for _, t := range p.Targets {
		if t.breaker == nil {
			continue
		}
		if u := t.breaker.OpenUntil(); !u.IsZero() && (soonest.IsZero() || u.Before(soonest)) {
			soonest = u
		}
	}
	return max(time.Until(soonest), time.Second)
}

// Outcome is what a try of a request came to, for health accounting.
type Outcome uint8

const (
	// Success: the target answered with a non-5xx status.
	Success Outcome = iota
	// Failure: the target failed (5xx, connect error, timeout, reset, bad
	// response). Counts toward ejection and the circuit.
	Failure
	// Neutral: the try ended for a reason that says nothing about the
	// target (the client hung up, the gateway gave up). Counts nowhere,
	// but releases a half-open trial.
	Neutral
)

// Report records a finished try: latency for the balancer, the outcome
// for outlier detection and the circuit breaker.
func (p *Pool) Report(t *Target, o Outcome, rtt time.Duration) {
	var now int64
	if o != Neutral { // the only outcome that does not record latency
		now = lb.MonoNow()
	}
	p.ReportAt(t, o, rtt, now)
}

// ReportAt is Report for an outcome known at now (lb.MonoAt of the time
// the caller read when the try ended): one clock read fewer per request.
func (p *Pool) ReportAt(t *Target, o Outcome, rtt time.Duration, now int64) {
	if o != Neutral {
		t.ObserveAt(rtt, now)
	}
	if t.breaker != nil {
		switch o {
		case Neutral:
			if t.breaker.State() == CircuitHalfOpen {
				t.breaker.trials.Add(-1)
			}
		default:
			t.breaker.Record(o == Success)
		}
	}
	switch o {
	case Success:
		t.outlier.consecutive.Store(0)
	case Failure:
		p.noteFailure(t)
	}
}

// newHostClient makes the HostClient of one target. streamFailures, when
// not nil, counts the target's broken response streams.
// tlsConfig is used for an https:// target (nil: fasthttp's defaults).
func newHostClient(u *url.URL, s Settings, streamFailures *atomic.Uint64, tlsConfig *tls.Config) *fasthttp.HostClient {
	dialer := &fasthttp.TCPDialer{DNSCacheDuration: time.Minute}
	connectTimeout := s.ConnectTimeout
	if connectTimeout <= 0 {
		connectTimeout = 2 * time.Second
	}
	return &fasthttp.HostClient{
		Addr:      u.Host,
		IsTLS:     u.Scheme == "https",
		TLSConfig: tlsConfig,
		// fasthttp runs the TLS handshake over this connection (bounded by
		// WriteTimeout); the idle check looks under the tls.Conn at it.
		Dial: func(addr string) (net.Conn, error) {
			c, err := dialer.DialTimeout(addr, connectTimeout)
			if err != nil {
				return nil, err
			}
			return wrapConn(c), nil // for the idle check (idlecheck.go)
		},
		MaxConns:                  s.MaxConns,
		MaxConnWaitTimeout:        s.MaxConnWait,
		MaxIdleConnDuration:       s.IdleTimeout,
		ReadTimeout:               s.ReadTimeout,
		WriteTimeout:              s.WriteTimeout,
		MaxIdemponentCallAttempts: 1,
		ReadBufferSize:            s.HeaderBufferBytes,
		WriteBufferSize:           16 << 10,
		DisablePathNormalizing:    true,
		NoDefaultUserAgentHeader:  true,
		Transport: &transport{bufferBody: s.BufferBodyBytes, readTimeout: s.ReadTimeout, writeTimeout: s.WriteTimeout,
			streamFailures: streamFailures},
	}
}
