package observe

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// Cache results counted per route by sluice_cache_requests_total.
const (
	CacheHit         = iota // served from the cache, fresh
	CacheMiss               // not in the cache: fetched upstream
	CacheStale              // served stale (stale-while-revalidate, stale-if-error)
	CacheRevalidated        // stale, validated upstream (304) and served
	CacheCoalesced          // waited for another request's fetch of the same key
	CacheBypass             // not cacheable by its request (method, credentials, Range)
	numCacheResults
)

var cacheResultNames = [numCacheResults]string{"hit", "miss", "stale", "revalidated", "coalesced", "bypass"}

// cacheMetrics are registered on first use (a gateway that caches
// nothing shows no cache series).
type cacheMetrics struct {
	once      sync.Once
	results   *prometheus.CounterVec
	evictions *prometheus.CounterVec
	stored    *prometheus.GaugeVec
	routes    sync.Map // name -> *CacheRoute
}

// CacheRoute holds one route's cache metric children.
type CacheRoute struct {
	results   [numCacheResults]prometheus.Counter
	evictions prometheus.Counter
	stored    prometheus.Gauge
}

// CacheRoute returns the cache handles of a route, the same across
// reloads. Build time (and the store's deletion callback) only.
func (m *Metrics) CacheRoute(name string) *CacheRoute {
	if m == nil {
		return nil
	}
	c := &m.cache
	c.once.Do(func() {
		c.results = prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_cache_requests_total", Help: "Requests on caching routes, by route and result: hit, miss, stale (served stale), revalidated (304 from upstream), coalesced (waited for another request's fetch), bypass.",
		}, []string{"route", "result"})
		c.evictions = prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_cache_evictions_total", Help: "Entries the memory cache evicted for room, by the route that stored them.",
		}, []string{"route"})
		c.stored = prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sluice_cache_stored_bytes", Help: "Bytes the memory cache holds, by the route that stored them.",
		}, []string{"route"})
		m.Registry.MustRegister(c.results, c.evictions, c.stored)
	})
	if r, ok := c.routes.Load(name); ok {
		return r.(*CacheRoute)
	}
	r := &CacheRoute{evictions: c.evictions.WithLabelValues(name), stored: c.stored.WithLabelValues(name)}
	for i, n := range cacheResultNames {
		r.results[i] = c.results.WithLabelValues(name, n)
	}
	actual, _ := c.routes.LoadOrStore(name, r)
	return actual.(*CacheRoute)
}

// KnownCacheRoute is the route's cache series if a snapshot made them
// (CacheRoute), else nil (whose methods do nothing): for names read from
// stored entries (another instance's, through Redis), which must never
// create series of their own.
func (m *Metrics) KnownCacheRoute(name string) *CacheRoute {
	if m == nil {
		return nil
	}
	if r, ok := m.cache.routes.Load(name); ok {
		return r.(*CacheRoute)
	}
	return nil
}

// Result counts one request's cache result.
func (r *CacheRoute) Result(result int) {
	if r != nil {
		r.results[result].Inc()
	}
}

// Stored adds (or, negative, removes) bytes held, counting an eviction.
func (r *CacheRoute) Stored(bytes int64, evicted bool) {
	if r == nil {
		return
	}
	r.stored.Add(float64(bytes))
	if evicted {
		r.evictions.Inc()
	}
}

// forget drops a removed route's cache series. Under Metrics.mu.
func (c *cacheMetrics) forget(name string) {
	if _, ok := c.routes.LoadAndDelete(name); !ok {
		return
	}
	c.results.DeletePartialMatch(prometheus.Labels{"route": name})
	c.evictions.DeletePartialMatch(prometheus.Labels{"route": name})
	c.stored.DeletePartialMatch(prometheus.Labels{"route": name})
}
