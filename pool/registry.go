package pool

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"net/url"
	"sync"
)

// Registry keeps targets alive across snapshots. Building a pool asks it
// for targets; one whose upstream, URL, weight and settings are unchanged
// comes back as the same *Target, with its open connections, counters,
// health, ejection and circuit state. After a new snapshot is in place,
// Retain drops the targets it no longer uses: their health checks stop and
// their idle connections close. In-flight requests of an older snapshot
// keep working: a dropped HostClient still serves them.
type Registry struct {
	log     *slog.Logger
	mu      sync.Mutex
	targets map[string]*Target
	budgets map[string]*retryBudget
}

// NewRegistry returns an empty registry. log receives health and ejection
// events.
func NewRegistry(log *slog.Logger) *Registry {
	if log == nil {
		log = slog.Default()
	}
	return &Registry{log: log, targets: map[string]*Target{}, budgets: map[string]*retryBudget{}}
}

func (r *Registry) target(upstream, rawURL string, weight int, s Settings) (*Target, error) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Port() == "" {
		return nil, fmt.Errorf("target %q: want http(s)://host:port", rawURL)
	}
	ks := s
	ks.TLS = nil // by content, not by pointer
	key := fmt.Sprintf("%s|%s://%s|w%d|%+v|%+v|%+v|tls:%s", upstream, u.Scheme, u.Host, weight, ks, deref(s.Health), deref(s.Circuit), s.TLS.Key())
	r.mu.Lock()
	defer r.mu.Unlock()
	if t, ok := r.targets[key]; ok {
		return t, nil
	}
	t := &Target{URL: rawURL, Host: u.Host, Upstream: upstream, key: key, settings: s, log: r.log, Scheme: []byte(u.Scheme)}
	var tlsConfig *tls.Config
	if u.Scheme == "https" {
		if tlsConfig, err = s.TLS.Config(); err != nil {
			return nil, fmt.Errorf("target %q: tls: %w", rawURL, err)
		}
	}
	t.Client = newHostClient(u, s, &t.streamFailures, tlsConfig)
	if u.Scheme == "https" && s.TLS != nil && s.TLS.InsecureSkipVerify {
		r.log.Warn("upstream TLS certificate verification is off (tls.insecure_skip_verify)", "upstream", upstream, "target", rawURL)
	}
	t.Weight = weight
	if s.Circuit != nil {
		t.breaker = newBreaker(*s.Circuit, &t.Target, func(from, to CircuitState) {
			r.log.Warn("circuit breaker changed", "upstream", upstream, "target", rawURL,
				"from", from.String(), "to", to.String())
			if to == CircuitClosed {
				t.StartWarmup(s.SlowStart)
			}
		})
	}
	if s.Health != nil {
		t.stopCheck = t.startHealthCheck(*s.Health)
	}
	r.targets[key] = t
	return t, nil
}

func deref[T any](p *T) any {
	if p == nil {
		return nil
	}
	return *p
}

// budget returns the upstream's retry budget, kept across reloads while
// its settings stay the same.
func (r *Registry) budget(upstream string, ratio float64, minPerSecond int) *retryBudget {
	key := fmt.Sprintf("%s|%g|%d", upstream, ratio, minPerSecond)
	r.mu.Lock()
	defer r.mu.Unlock()
	if b, ok := r.budgets[key]; ok {
		return b
	}
	b := newRetryBudget(ratio, minPerSecond)
	r.budgets[key] = b
	return b
}

// Retain keeps exactly the targets in live (those of the snapshot now
// serving) and stops every other one, including targets built for a
// snapshot that was then refused.
func (r *Registry) Retain(live []*Target) (dropped int) {
	keep := make(map[string]bool, len(live))
	for _, t := range live {
		keep[t.key] = true
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for key, t := range r.targets {
		if !keep[key] {
			if t.stopCheck != nil {
				t.stopCheck()
			}
			t.Client.CloseIdleConnections()
			delete(r.targets, key)
			dropped++
		}
	}
	return dropped
}

// Len is the number of live targets.
func (r *Registry) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.targets)
}
