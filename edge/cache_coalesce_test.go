package edge

import (
	"net/http"
	"sync"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/sluicegw/sluice/internal/testutil"
)

// cacheCount reads sluice_cache_requests_total for a route and result.
func cacheCount(t testing.TB, g *testGateway, route, result string) float64 {
	t.Helper()
	fams, err := g.res.metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != "sluice_cache_requests_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			if labels(m)["route"] == route && labels(m)["result"] == result {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

func labels(m *dto.Metric) map[string]string {
	out := map[string]string{}
	for _, l := range m.GetLabel() {
		out[l.GetName()] = l.GetValue()
	}
	return out
}

// TestCacheCoalescesConcurrentMisses: 100 concurrent misses for one key
// send exactly one request upstream; the other 99 wait for its answer
// and are served from the entry it stored.
func TestCacheCoalescesConcurrentMisses(t *testing.T) {
	release := make(chan struct{})
	up := startCacheUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		<-release
		w.Header().Set("Cache-Control", "max-age=60")
		w.Write([]byte("one answer"))
	})
	g := startGateway(t, cacheConfig(up.URL, "cache: { lock_timeout: 1m }", "{}"))
	const n = 100
	var wg sync.WaitGroup
	bodies := make([]string, n)
	statuses := make([]int, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := g.get(t, "/hot")
			bodies[i], statuses[i] = r.body, r.status
		}()
	}
	// Every request but the leader is waiting on the leader's fetch.
	testutil.WaitFor(t, "99 coalesced waiters", func() bool { return cacheCount(t, g, "all", "coalesced") == n-1 })
	close(release)
	wg.Wait()
	if got := up.hits.Load(); got != 1 {
		t.Fatalf("upstream saw %d requests for 100 concurrent misses, want 1", got)
	}
	for i := range n {
		if statuses[i] != 200 || bodies[i] != "one answer" {
			t.Fatalf("request %d: %d %q", i, statuses[i], bodies[i])
		}
	}
}

// TestCacheCoalescedWaitersGoUpstreamWhenNotStorable: when the leader's
// answer can't be stored (no-store), the waiters don't get it: each goes
// upstream itself (one client's uncacheable answer is never handed to
// another).
func TestCacheCoalescedWaitersGoUpstreamWhenNotStorable(t *testing.T) {
	release := make(chan struct{})
	up := startCacheUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		<-release
		w.Header().Set("Cache-Control", "no-store")
		w.Write([]byte("personal"))
	})
	g := startGateway(t, cacheConfig(up.URL, "cache: { lock_timeout: 1m }", "{}"))
	const n = 5
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() { defer wg.Done(); g.get(t, "/p") }()
	}
	testutil.WaitFor(t, "4 coalesced waiters", func() bool { return cacheCount(t, g, "all", "coalesced") == n-1 })
	close(release)
	wg.Wait()
	if got := up.hits.Load(); got != n {
		t.Fatalf("upstream saw %d requests, want %d", got, n)
	}
}
