// Package pool owns sluice's upstream connections: one fasthttp.HostClient
// per target, grouped into named pools with a balancer.
//
// Invariants:
//   - A Pool is immutable once built; a config reload builds new Pools.
//   - Targets (and so their HostClients, open connections and counters) are
//     shared through a Registry keyed by everything that shapes the client,
//     so a reload that leaves a target unchanged keeps its connections.
//   - fasthttp's own retries are off (MaxIdemponentCallAttempts = 1): sluice
//     decides what is retried.
//   - pool may import lb; it never imports edge.
package pool

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"time"

	"github.com/sluicegw/sluice/lb"
	"github.com/valyala/fasthttp"
)

// ErrNoTarget is returned when a pool has nothing to send to.
var ErrNoTarget = errors.New("pool: no target available")

// Settings shape the HostClient of every target in a pool.
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
	// whole; larger or chunked ones stream to the client.
	BufferBodyBytes int
}

// Target is one backend with its connection pool and balancing state.
type Target struct {
	lb.Target
	// URL is the target as configured ("http://127.0.0.1:9001").
	URL string
	// Host is host:port, used when a route rewrites Host to the target.
	Host string
	// Client sends requests to this target.
	Client *fasthttp.HostClient

	key string
}

// Pool is a named, immutable set of targets and the picker over them.
type Pool struct {
	Name    string
	Targets []*Target
	picker  lb.Picker
}

// TargetSpec describes one target of a pool being built.
type TargetSpec struct {
	URL    string
	Weight int
}

// Pick chooses a target. key feeds hashing balancers.
func (p *Pool) Pick(key uint64) (*Target, error) {
	if len(p.Targets) == 0 {
		return nil, ErrNoTarget
	}
	return p.Targets[p.picker.Pick(key)], nil
}

// Build makes a pool from specs, taking targets from (and adding them to)
// reg so unchanged targets keep their clients across reloads.
func Build(reg *Registry, name, balancer string, specs []TargetSpec, s Settings) (*Pool, error) {
	p := &Pool{Name: name}
	lbTargets := make([]*lb.Target, 0, len(specs))
	for _, spec := range specs {
		t, err := reg.target(spec.URL, spec.Weight, s)
		if err != nil {
			return nil, fmt.Errorf("upstream %q: %w", name, err)
		}
		p.Targets = append(p.Targets, t)
		lbTargets = append(lbTargets, &t.Target)
	}
	picker, err := lb.New(balancer, lbTargets)
	if err != nil {
		return nil, fmt.Errorf("upstream %q: %w", name, err)
	}
	p.picker = picker
	return p, nil
}

func newHostClient(u *url.URL, s Settings) *fasthttp.HostClient {
	dialer := &fasthttp.TCPDialer{DNSCacheDuration: time.Minute}
	connectTimeout := s.ConnectTimeout
	return &fasthttp.HostClient{
		Addr:  u.Host,
		IsTLS: u.Scheme == "https",
		Dial: func(addr string) (net.Conn, error) {
			return dialer.DialTimeout(addr, connectTimeout)
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
		Transport:                 &transport{bufferBody: s.BufferBodyBytes, readTimeout: s.ReadTimeout, writeTimeout: s.WriteTimeout},
	}
}
