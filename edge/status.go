package edge

import (
	"maps"
	"slices"
	"strings"
	"time"
)

// TargetStatus is one target as /admin/upstreams and /services/health
// show it.
type TargetStatus struct {
	URL                 string  `json:"url"`
	State               string  `json:"state"` // healthy, unhealthy, ejected, circuit_open
	Weight              int     `json:"weight"`
	InFlight            int64   `json:"in_flight"`
	LatencyMS           float64 `json:"latency_ms"` // peak EWMA
	Circuit             string  `json:"circuit,omitempty"`
	CircuitTrips        int64   `json:"circuit_trips,omitempty"`
	EjectedUntil        string  `json:"ejected_until,omitempty"`
	ConsecutiveFailures int     `json:"consecutive_failures"`
	HealthChecked       bool    `json:"health_checked"`
	LastHealthError     string  `json:"last_health_error,omitempty"`
}

// UpstreamStatus is one upstream's state.
type UpstreamStatus struct {
	Name              string         `json:"name"`
	Balancer          string         `json:"balancer"`
	Usable            int            `json:"usable"`
	Total             int            `json:"total"`
	RetryBudgetDenied int64          `json:"retry_budget_denied"`
	Targets           []TargetStatus `json:"targets"`
}

// UpstreamStatus reports every upstream of the current snapshot, by name.
func (g *Gateway) UpstreamStatus() []UpstreamStatus {
	snap := g.snap.Load()
	names := slices.Sorted(maps.Keys(snap.upstreams))
	out := make([]UpstreamStatus, 0, len(names))
	for _, name := range names {
		up := snap.upstreams[name]
		us := UpstreamStatus{Name: name, Balancer: snap.Config.Upstreams[name].Balancer,
			Total: len(up.pool.Targets), RetryBudgetDenied: up.pool.Budget.Denied()}
		for _, t := range up.pool.Targets {
			ts := TargetStatus{
				URL: t.URL, State: t.Status(), Weight: t.Weight, InFlight: t.InFlight(),
				LatencyMS:           float64(t.Latency().Microseconds()) / 1000,
				ConsecutiveFailures: t.ConsecutiveFailures(),
				HealthChecked:       t.HealthChecked(), LastHealthError: t.LastHealthError(),
			}
			if ts.State == "healthy" {
				us.Usable++
			}
			if t.HasCircuit() {
				ts.Circuit, ts.CircuitTrips = t.CircuitState().String(), t.CircuitTrips()
			}
			if u := t.EjectedUntil(); !u.IsZero() {
				ts.EjectedUntil = u.UTC().Format(time.RFC3339Nano)
			}
			us.Targets = append(us.Targets, ts)
		}
		out = append(out, us)
	}
	return out
}

// BreakerStatus is one circuit breaker (seed 001's shape, per target).
type BreakerStatus struct {
	Name                string `json:"name"` // upstream@host:port
	Upstream            string `json:"upstream"`
	Target              string `json:"target"`
	State               string `json:"state"`
	Trips               int64  `json:"trips"`
	ConsecutiveFailures int    `json:"consecutive_failures"`
	OpenUntil           string `json:"open_until,omitempty"`
}

// CircuitBreakers lists the breakers of the current snapshot.
func (g *Gateway) CircuitBreakers() []BreakerStatus {
	snap := g.snap.Load()
	out := []BreakerStatus{} // none: [] in JSON, not null
	for _, name := range slices.Sorted(maps.Keys(snap.upstreams)) {
		for _, t := range snap.upstreams[name].pool.Targets {
			if !t.HasCircuit() {
				continue
			}
			bs := BreakerStatus{Name: name + "@" + t.Host, Upstream: name, Target: t.URL,
				State: t.CircuitState().String(), Trips: t.CircuitTrips(), ConsecutiveFailures: t.ConsecutiveFailures()}
			if u := t.CircuitOpenUntil(); !u.IsZero() {
				bs.OpenUntil = u.UTC().Format(time.RFC3339Nano)
			}
			out = append(out, bs)
		}
	}
	return out
}

// ResetCircuitBreakers closes breakers: all of them (name ""), those of an
// upstream (its name), or one ("upstream@host:port"). It returns how many
// it reset.
func (g *Gateway) ResetCircuitBreakers(name string) int {
	upName, host, one := strings.Cut(name, "@")
	n := 0
	for un, up := range g.snap.Load().upstreams {
		if name != "" && un != upName {
			continue
		}
		for _, t := range up.pool.Targets {
			if !t.HasCircuit() || (one && t.Host != host) {
				continue
			}
			t.ResetCircuit()
			n++
		}
	}
	if n > 0 {
		g.log.Info("circuit breakers reset", "name", name, "count", n)
	}
	return n
}
