package pool

import (
	"fmt"
	"net/url"
	"sync"
)

// Registry keeps targets alive across snapshots. Building a pool asks it
// for targets; one whose URL, weight and client settings are unchanged
// comes back as the same *Target, with its open connections and counters.
// After a new snapshot is in place, Retain drops the targets it no longer
// uses and closes their idle connections. In-flight requests of an older
// snapshot keep working: a dropped HostClient still serves them.
type Registry struct {
	mu      sync.Mutex
	targets map[string]*Target
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{targets: map[string]*Target{}}
}

func (r *Registry) target(rawURL string, weight int, s Settings) (*Target, error) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Port() == "" {
		return nil, fmt.Errorf("target %q: want http(s)://host:port", rawURL)
	}
	// Weight is part of the key because lb.Target carries it.
	key := fmt.Sprintf("%s://%s|w%d|%+v", u.Scheme, u.Host, weight, s)
	r.mu.Lock()
	defer r.mu.Unlock()
	if t, ok := r.targets[key]; ok {
		return t, nil
	}
	t := &Target{URL: rawURL, Host: u.Host, Client: newHostClient(u, s), key: key}
	t.Weight = weight
	r.targets[key] = t
	return t, nil
}

// Retain keeps exactly the targets in live (those of the snapshot now
// serving) and closes the idle connections of every other one, including
// targets built for a snapshot that was then refused.
func (r *Registry) Retain(live []*Target) (dropped int) {
	keep := make(map[string]bool, len(live))
	for _, t := range live {
		keep[t.key] = true
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for key, t := range r.targets {
		if !keep[key] {
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
