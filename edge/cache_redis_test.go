package edge

import (
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicegw/sluice/edge/cache"
	"github.com/sluicegw/sluice/internal/testutil"
)

func sharedCacheConfig(upURL, redisAddr, store string) string {
	return cacheConfig(upURL, `redis: { addrs: ["`+redisAddr+`"], timeout: 200ms }
cache: { store: `+store+` }`, "{}")
}

// TestCacheSharedThroughRedis: two gateways sharing one redis-server
// (store: both). A miss on one is a hit on the other, and a purge on one
// is seen by both: the shared copy is deleted and the other instance's
// memory tier drops its copy when the purge is published.
func TestCacheSharedThroughRedis(t *testing.T) {
	rd := testutil.StartRedis(t)
	up := startCacheUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		w.Header().Set("Surrogate-Key", "products product-7")
		w.Write([]byte("shared " + r.URL.Path))
	})
	a := startGateway(t, sharedCacheConfig(up.URL, rd.Addr, "both"))
	b := startGateway(t, sharedCacheConfig(up.URL, rd.Addr, "both"))

	if r := a.do(t, request{path: "/p/7", host: "shop.example"}); !strings.HasSuffix(r.header.Get("Cache-Status"), "stored") {
		t.Fatalf("first request on A: %q", r.header.Get("Cache-Status"))
	}
	r := b.do(t, request{path: "/p/7", host: "shop.example"})
	if !strings.HasPrefix(r.header.Get("Cache-Status"), "sluice; hit") || r.body != "shared /p/7" {
		t.Fatalf("B after A's miss: %q %q, want a hit from Redis", r.header.Get("Cache-Status"), r.body)
	}
	if n := up.hits.Load(); n != 1 {
		t.Fatalf("upstream saw %d requests, want 1", n)
	}
	// B holds it in memory now. Purge by tag on A.
	key := primaryKey("GET shop.example/p/7", "all")
	if _, ok := b.res.cacheMem.Get(t.Context(), key); !ok {
		t.Fatalf("B's memory tier has no %q", key)
	}
	n, err := a.PurgeCache(cache.Purge{Kind: cache.PurgeTag, Arg: "product-7"})
	if err != nil || n != 1 {
		t.Fatalf("purge on A: %d, %v; want 1 entry", n, err)
	}
	testutil.WaitFor(t, "B's memory tier to drop the purged entry", func() bool {
		_, ok := b.res.cacheMem.Get(t.Context(), key)
		return !ok
	})
	if r := b.do(t, request{path: "/p/7", host: "shop.example"}); !strings.HasPrefix(r.header.Get("Cache-Status"), "sluice; fwd=miss") {
		t.Fatalf("B after the purge: %q, want a miss", r.header.Get("Cache-Status"))
	}
	if n := up.hits.Load(); n != 2 {
		t.Fatalf("upstream saw %d requests, want 2", n)
	}
	// A successful POST to the URI on A invalidates it everywhere (RFC
	// 9111 4.4): B's memory copy too.
	if _, ok := b.res.cacheMem.Get(t.Context(), key); !ok {
		t.Fatal("B's memory tier lost the entry it just stored")
	}
	if r := a.do(t, request{method: "POST", path: "/p/7", host: "shop.example"}); r.status != 200 {
		t.Fatalf("POST: %d", r.status)
	}
	testutil.WaitFor(t, "B's memory tier to drop the entry the POST invalidated", func() bool {
		_, ok := b.res.cacheMem.Get(t.Context(), key)
		return !ok
	})
}

// TestCacheRedisKilledMidLoad: Redis dies while requests flow. With
// store both, the memory tier keeps answering; with store redis, requests
// pass through to the upstream. Never an error.
func TestCacheRedisKilledMidLoad(t *testing.T) {
	for _, store := range []string{"both", "redis"} {
		t.Run(store, func(t *testing.T) {
			rd := testutil.StartRedis(t)
			up := startCacheUpstream(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Cache-Control", "max-age=600")
				w.Write([]byte("ok"))
			})
			g := startGateway(t, sharedCacheConfig(up.URL, rd.Addr, store))
			var bad atomic.Int64
			var killed atomic.Bool
			var done atomic.Int64
			var wg sync.WaitGroup
			stop := make(chan struct{})
			for w := range 4 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := 0; ; i++ {
						select {
						case <-stop:
							return
						default:
						}
						path := "/k/" + string(rune('a'+(i+w)%8)) // in memory before the kill
						if killed.Load() {
							path = "/n/" + strconv.Itoa(w) + "-" + strconv.Itoa(i) // new keys: a Redis lookup each
						}
						r := g.get(t, path)
						if r.status != 200 || r.body != "ok" {
							bad.Add(1)
						}
						done.Add(1)
					}
				}()
			}
			testutil.WaitFor(t, "load before the kill", func() bool { return done.Load() > 50 })
			rd.Stop()
			killed.Store(true)
			mark := done.Load()
			testutil.WaitFor(t, "load after the kill", func() bool { return done.Load() > mark+200 })
			close(stop)
			wg.Wait()
			if n := bad.Load(); n != 0 {
				t.Fatalf("%d requests failed with Redis killed, want 0", n)
			}
			if g.res.cacheRedis.Failures() == 0 {
				t.Fatal("Redis killed, yet the cache saw no failure: the test did not reach Redis")
			}
		})
	}
}

// A key purge reads the URL's set of stored keys instead of scanning the
// Redis keyspace: with many unrelated keys and a short redis.timeout it
// still deletes every route's and variant's copy, and every instance's
// memory tier drops its own.
func TestCacheKeyPurgeDoesNotScanKeyspace(t *testing.T) {
	rd := testutil.StartRedis(t)
	up := startCacheUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		w.Header().Set("Vary", "Accept-Language")
		w.Write([]byte("v"))
	})
	cfg := cacheConfig(up.URL, `redis: { addrs: ["`+rd.Addr+`"], timeout: 20ms }
cache: { store: both }`, "{}")
	a := startGateway(t, cfg)
	b := startGateway(t, cfg)
	en := map[string]string{"Accept-Language": "en"}
	fr := map[string]string{"Accept-Language": "fr"}
	a.do(t, request{path: "/p/7", host: "shop.example", headers: en})
	a.do(t, request{path: "/p/7", host: "shop.example", headers: fr})
	if r := b.do(t, request{path: "/p/7", host: "shop.example", headers: en}); !strings.Contains(r.header.Get("Cache-Status"), "hit") {
		t.Fatalf("B: %s, want the shared hit", r.header.Get("Cache-Status"))
	}
	c := testutil.RedisClient(t, rd.Addr)
	ctx := t.Context()
	if err := c.Do(ctx, c.B().Eval().Script("for i=1,200000 do redis.call('SET','other:'..i,'x') end return 1").Numkeys(0).Build()).Error(); err != nil {
		t.Fatal(err)
	}
	if err := c.Do(ctx, c.B().ConfigResetstat().Build()).Error(); err != nil {
		t.Fatal(err)
	}
	n, err := a.PurgeCache(cache.Purge{Kind: cache.PurgeKey, Arg: "GET shop.example/p/7"})
	if err != nil || n != 3 {
		t.Fatalf("key purge: %d, %v; want the index and both variants", n, err)
	}
	stats, err := c.Do(ctx, c.B().Info().Section("commandstats").Build()).ToString()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(stats, "cmdstat_scan:") {
		t.Fatalf("a key purge scanned the keyspace:\n%s", stats)
	}
	keys, err := c.Do(ctx, c.B().Keys().Pattern("sluice:cache:GET*").Build()).AsStrSlice()
	if err != nil || len(keys) != 0 {
		t.Fatalf("shared copies left: %q %v", keys, err)
	}
	testutil.WaitFor(t, "B's memory tier to drop its copy", func() bool {
		_, ok := b.res.cacheMem.Get(ctx, primaryKey("GET shop.example/p/7", "all"))
		return !ok
	})
}

// Metric series are made only for routes of the instance's config: an
// entry read from Redis naming another route (another instance's config,
// or anyone who can write to Redis) adds no series.
func TestCacheMetricsOnlyForConfiguredRoutes(t *testing.T) {
	rd := testutil.StartRedis(t)
	up := startCacheUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		w.Write([]byte("v"))
	})
	g := startGateway(t, sharedCacheConfig(up.URL, rd.Addr, "both"))
	key := primaryKey("GET shop.example/p", "all")
	e := &cache.Entry{Key: string(key), Route: "made-up-route-1", Status: 200, Lifetime: int64(time.Hour), ResponseTime: time.Now().UnixNano(), Body: []byte("from redis")}
	c := testutil.RedisClient(t, rd.Addr)
	if err := c.Do(t.Context(), c.B().Set().Key("sluice:cache:"+string(key)).Value(string(e.Marshal())).Ex(time.Minute).Build()).Error(); err != nil {
		t.Fatal(err)
	}
	if r := g.do(t, request{path: "/p", host: "shop.example"}); r.body != "from redis" {
		t.Fatalf("got %q (%s), want the Redis entry", r.body, r.header.Get("Cache-Status"))
	}
	fams, err := g.res.metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		for _, m := range f.GetMetric() {
			if labels(m)["route"] == "made-up-route-1" {
				t.Fatalf("%s has a series for a route named by a Redis entry", f.GetName())
			}
		}
	}
	if cacheCount(t, g, "all", "hit") != 1 {
		t.Fatal("the hit is not counted on the route that served it")
	}
}
