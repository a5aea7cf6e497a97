package observe

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

func newTestMetrics(st State) *Metrics {
	return New("v-test", time.Now(), func() State { return st })
}

func TestRouteObserveCountsByMethodAndCode(t *testing.T) {
	m := newTestMetrics(State{})
	r := m.Route("api")
	for _, c := range []struct {
		method string
		code   int
		n      int
	}{{"GET", 200, 3}, {"POST", 201, 2}, {"GET", 503, 1}, {"BREW", 418, 2}, {"GET", 42, 1}} {
		for i := 0; i < c.n; i++ {
			r.Observe([]byte(c.method), c.code, 2*time.Millisecond)
		}
	}
	for _, want := range []struct {
		method, code string
		n            float64
	}{{"GET", "200", 3}, {"POST", "201", 2}, {"GET", "503", 1}, {"OTHER", "418", 2}, {"GET", "599", 1}} {
		if got := testutil.ToFloat64(m.requests.WithLabelValues("api", want.method, want.code)); got != want.n {
			t.Errorf("requests{api,%s,%s} = %v, want %v", want.method, want.code, got, want.n)
		}
	}
	if n := testutil.CollectAndCount(m.duration); n != 1 {
		t.Errorf("%d duration series, want 1 (one route)", n)
	}
	// The same handle across reloads: counting continues.
	if m.Route("api") != r {
		t.Error("Route returned a new handle for the same name")
	}
}

func TestRetainDropsSeriesOfRemovedRoutesAndUpstreams(t *testing.T) {
	m := newTestMetrics(State{})
	m.Route("old").Observe([]byte("GET"), 200, time.Millisecond)
	m.Route("kept").Observe([]byte("GET"), 200, time.Millisecond)
	m.Upstream("gone").Try(time.Millisecond)
	m.Upstream("stays").Try(time.Millisecond)
	m.Retain([]string{"kept"}, []string{"stays"})
	var buf bytes.Buffer
	if err := WriteJSON(&buf, m.Registry); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, gone := range []string{`"route":"old"`, `"upstream":"gone"`} {
		if strings.Contains(out, gone) {
			t.Errorf("%s still exported after Retain", gone)
		}
	}
	for _, kept := range []string{`"route":"kept"`, `"upstream":"stays"`} {
		if !strings.Contains(out, kept) {
			t.Errorf("%s missing after Retain", kept)
		}
	}
}

func TestNilHandlesRecordNothing(t *testing.T) {
	var m *Metrics
	var r *Route
	var u *Upstream
	// Metrics off: every call is a no-op, none panics.
	m.Begin()
	m.End()
	m.Reloaded(true)
	m.AuthFailure("x")
	m.Retain(nil, nil)
	if m.Route("a") != nil || m.Upstream("a") != nil {
		t.Fatal("nil Metrics returned a handle")
	}
	r.Observe([]byte("GET"), 200, 0)
	r.RateLimit()
	r.Quota()
	u.Try(0)
	u.Error(1)
	u.Status5xx()
	u.Retry()
}

func TestUpstreamErrorsByKind(t *testing.T) {
	m := newTestMetrics(State{})
	u := m.Upstream("users")
	u.Error(1) // connect
	u.Error(3) // timeout
	u.Error(3)
	u.Error(0)  // none: ignored
	u.Error(99) // unknown: ignored
	u.Status5xx()
	for kind, want := range map[string]float64{"connect": 1, "timeout": 2, "5xx": 1, "reset": 0} {
		if got := testutil.ToFloat64(m.upErrors.WithLabelValues("users", kind)); got != want {
			t.Errorf("errors{%s} = %v, want %v", kind, got, want)
		}
	}
}

// The JSON rendering carries the same figures as the text format, and the
// scrape-time state (targets, circuits, budget, Redis fallback).
func TestWriteJSON(t *testing.T) {
	m := newTestMetrics(State{
		Targets: []TargetState{
			{Upstream: "users", Target: "http://127.0.0.1:1", Usable: true, HasBreaker: true, CircuitState: 0, CircuitTrips: 2},
			{Upstream: "users", Target: "http://127.0.0.1:2", Usable: false, HasBreaker: true, CircuitState: 1, CircuitTrips: 5},
		},
		RetryBudgetDenied: map[string]int64{"users": 7},
		RedisFallback:     map[string]bool{"strict": true, "cluster": false},
	})
	m.Route("api").Observe([]byte("GET"), 200, 3*time.Millisecond)
	m.AuthFailure("token_expired")
	var buf bytes.Buffer
	if err := WriteJSON(&buf, m.Registry); err != nil {
		t.Fatal(err)
	}
	var doc struct{ Metrics []Family }
	if err := json.Unmarshal(buf.Bytes(), &doc); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, buf.String())
	}
	byName := map[string]Family{}
	for _, f := range doc.Metrics {
		byName[f.Name] = f
	}
	value := func(name string, labels map[string]string) float64 {
		t.Helper()
		for _, s := range byName[name].Samples {
			match := true
			for k, v := range labels {
				match = match && s.Labels[k] == v
			}
			if match && s.Value != nil {
				return *s.Value
			}
		}
		t.Fatalf("%s%v not in the JSON", name, labels)
		return 0
	}
	if v := value("sluice_requests_total", map[string]string{"route": "api", "code": "200"}); v != 1 {
		t.Errorf("requests = %v", v)
	}
	if v := value("sluice_target_up", map[string]string{"target": "http://127.0.0.1:2"}); v != 0 {
		t.Errorf("unusable target up = %v", v)
	}
	if v := value("sluice_circuit_state", map[string]string{"target": "http://127.0.0.1:2"}); v != 1 {
		t.Errorf("circuit state = %v, want 1 (open)", v)
	}
	if v := value("sluice_upstream_retry_budget_exhausted_total", map[string]string{"upstream": "users"}); v != 7 {
		t.Errorf("budget exhausted = %v", v)
	}
	if v := value("sluice_redis_fallback", map[string]string{"scope": "strict"}); v != 1 {
		t.Errorf("redis fallback = %v", v)
	}
	if v := value("sluice_auth_failures_total", map[string]string{"reason": "token_expired"}); v != 1 {
		t.Errorf("auth failures = %v", v)
	}
	if v := value("sluice_build_info", map[string]string{"version": "v-test"}); v != 1 {
		t.Errorf("build info = %v", v)
	}
	h := byName["sluice_request_duration_seconds"]
	if h.Type != "histogram" || len(h.Samples) != 1 || *h.Samples[0].Count != 1 {
		t.Fatalf("duration histogram: %+v", h)
	}
	for _, b := range h.Samples[0].Buckets {
		if want := uint64(0); b.LE >= 0.005 {
			want = 1
			if b.Count != want {
				t.Errorf("bucket le=%v: %d, want %d", b.LE, b.Count, want)
			}
		} else if b.Count != want {
			t.Errorf("bucket le=%v: %d, want %d", b.LE, b.Count, want)
		}
	}
	for _, f := range []string{"go_goroutines", "process_resident_memory_bytes", "sluice_uptime_seconds", "sluice_requests_in_flight"} {
		if _, ok := byName[f]; !ok {
			t.Errorf("%s missing", f)
		}
	}
}

func TestObserveAllocatesNothing(t *testing.T) {
	m := newTestMetrics(State{})
	r, u := m.Route("api"), m.Upstream("users")
	get := []byte("GET")
	r.Observe(get, 200, time.Millisecond)
	if n := testing.AllocsPerRun(1000, func() {
		m.Begin()
		r.Observe(get, 200, time.Millisecond)
		u.Try(time.Millisecond)
		u.Error(1)
		r.RateLimit()
		m.End()
	}); n != 0 {
		t.Errorf("%.1f allocations per observed request, want 0", n)
	}
}

// BenchmarkObserve: what metrics add per request (a route's counter and
// histogram, an upstream try, the in-flight gauge).
//
//	go test ./edge/observe -run '^$' -bench Observe -benchmem -cpu 1,2
func BenchmarkObserve(b *testing.B) {
	m := newTestMetrics(State{})
	r, u := m.Route("api"), m.Upstream("users")
	get := []byte("GET")
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			m.Begin()
			r.Observe(get, 200, 1500*time.Microsecond)
			u.Try(time.Millisecond)
			m.End()
		}
	})
}
