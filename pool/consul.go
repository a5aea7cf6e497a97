package pool

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/sluicegw/sluice/internal/consulwatch"
)

// ServiceQuery names the Consul service whose instances are an upstream's
// targets.
type ServiceQuery struct {
	Service     string
	Tag         string
	Datacenter  string
	PassingOnly bool
	Scheme      string // of the target URLs: http or https
	Wait        time.Duration
}

// WatchStatus is what a watcher knows, for the admin view.
type WatchStatus struct {
	Service    string    `json:"service"`
	Instances  int       `json:"instances"`
	LastIndex  uint64    `json:"last_index"`
	LastUpdate time.Time `json:"last_update"`
	LastError  string    `json:"last_error,omitempty"`
	ErrorSince time.Time `json:"error_since,omitzero"`
}

// ServiceWatcher follows a Consul service with blocking queries
// (/v1/health/service/NAME?index=&wait=) and reports every change of its
// target list. Consul is never on the request path: the watcher runs on
// its own goroutine and the gateway rebuilds its snapshot when told.
//
// The loop, its index rules, pacing and backoff are internal/consulwatch's
// (after Consul's guidance for blocking queries). When Consul can't be
// reached the last known targets stay: OnChange is simply not called.
type ServiceWatcher struct {
	Client   *api.Client
	Query    ServiceQuery
	Log      *slog.Logger
	OnChange func([]TargetSpec)

	status atomic.Pointer[WatchStatus]
}

// Status returns the watcher's latest status.
func (w *ServiceWatcher) Status() WatchStatus {
	if s := w.status.Load(); s != nil {
		return *s
	}
	return WatchStatus{Service: w.Query.Service}
}

// Fetch queries once, without blocking: the current targets and index.
func (w *ServiceWatcher) Fetch(ctx context.Context) ([]TargetSpec, uint64, error) {
	return w.query(ctx, 0)
}

func (w *ServiceWatcher) query(ctx context.Context, index uint64) ([]TargetSpec, uint64, error) {
	q := &api.QueryOptions{WaitIndex: index, WaitTime: w.Query.Wait, Datacenter: w.Query.Datacenter}
	entries, meta, err := w.Client.Health().Service(w.Query.Service, w.Query.Tag, w.Query.PassingOnly, q.WithContext(ctx))
	if err != nil {
		return nil, 0, fmt.Errorf("consul service %q: %w", w.Query.Service, err)
	}
	return targetsFromEntries(entries, w.Query.Scheme), meta.LastIndex, nil
}

// targetsFromEntries turns Consul's answer into target specs, sorted by
// URL so equal sets compare equal. An instance's address is its service
// address, else its node's; its weight is Consul's passing weight (1..1000).
func targetsFromEntries(entries []*api.ServiceEntry, scheme string) []TargetSpec {
	out := make([]TargetSpec, 0, len(entries))
	for _, e := range entries {
		if e.Service == nil || e.Service.Port <= 0 {
			continue
		}
		host := e.Service.Address
		if host == "" && e.Node != nil {
			host = e.Node.Address
		}
		if host == "" {
			continue
		}
		weight := 1
		if e.Service.Weights.Passing > 0 {
			weight = min(e.Service.Weights.Passing, 1000)
		}
		out = append(out, TargetSpec{URL: scheme + "://" + net.JoinHostPort(host, strconv.Itoa(e.Service.Port)), Weight: weight})
	}
	slices.SortFunc(out, func(a, b TargetSpec) int {
		if a.URL < b.URL {
			return -1
		}
		if a.URL > b.URL {
			return 1
		}
		return 0
	})
	return slices.CompactFunc(out, func(a, b TargetSpec) bool { return a.URL == b.URL })
}

// Run follows the service until ctx ends. known is the target list the
// caller already has (from Fetch), index the index it came with.
func (w *ServiceWatcher) Run(ctx context.Context, known []TargetSpec, index uint64) {
	consulwatch.Loop{
		Query: func(ctx context.Context, index uint64) (uint64, error) {
			targets, newIndex, err := w.query(ctx, index)
			if err != nil {
				return 0, err
			}
			w.status.Store(&WatchStatus{Service: w.Query.Service, Instances: len(targets), LastIndex: newIndex, LastUpdate: time.Now()})
			if !slices.Equal(targets, known) {
				known = targets
				w.Log.Info("consul service changed", "service", w.Query.Service, "instances", len(targets))
				w.OnChange(targets)
			}
			return newIndex, nil
		},
		OnError: w.noteError,
		OnRecover: func() {
			w.Log.Info("consul reachable again", "service", w.Query.Service)
		},
		OnReset: func(from, to uint64) {
			w.Log.Info("consul index went backwards; resetting", "service", w.Query.Service, "from", from, "to", to)
		},
	}.Run(ctx, index)
}

func (w *ServiceWatcher) noteError(err error, index uint64, first bool) {
	st := w.Status()
	st.LastError = err.Error()
	if first {
		st.ErrorSince = time.Now()
		w.Log.Warn("consul unreachable; keeping the last known targets", "service", w.Query.Service, "error", err.Error())
	}
	st.LastIndex = index
	w.status.Store(&st)
}
