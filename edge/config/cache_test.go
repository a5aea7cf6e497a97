package config

import (
	"strings"
	"testing"
	"time"
)

// A bad cache block is refused with file:line and field, every problem
// at once; a good one gets its defaults.
func TestCacheConfig(t *testing.T) {
	src := `admin: { listen: "off" }
upstreams:
  u: { targets: [ { url: "http://127.0.0.1:9001" } ] }
cache:
  store: both
  lock_timeout: 5m
  memory_bytes: 1MiB
  max_object_bytes: 2MiB
routes:
  - name: r
    match: { prefix: / }
    upstream: u
    cache:
      max_vary: 100
      key: { query: some, query_allow: [id], query_deny: ["a&b"], headers: ["bad header"] }
  - { name: s, match: { prefix: /s/ }, upstream: u, cache: { ttl: -1s } }
  - { name: t, match: { prefix: /t/ }, upstream: u, cache: { tll: 1s } }
  - { name: w, match: { prefix: /w/ }, upstream: u, cache: { max_object_bytes: 1GiB, stale_while_revalidate: -5s, stale_if_error: -1m } }
`
	_, err := Parse("c.yaml", []byte(src), nil)
	if err == nil {
		t.Fatal("accepted")
	}
	got := err.Error()
	for _, w := range []string{
		`c.yaml:5: cache.store: "both" needs a redis block (redis.addrs)`,
		`c.yaml:6: cache.lock_timeout: must be at most 1m`,
		`c.yaml:8: cache.max_object_bytes: must be at most cache.memory_bytes (1048576), got 2097152`,
		`c.yaml:14: routes[0].cache.max_vary: want 0..64, got 100`,
		`c.yaml:15: routes[0].cache.key.query_deny: query_allow and query_deny can't both be set`,
		`c.yaml:15: routes[0].cache.key.query: unknown mode "some" (all, none, allow or deny)`,
		`routes[0].cache.key.query_deny[0]: "a&b" is not a query parameter name`,
		`routes[0].cache.key.headers[0]: "bad header" is not a header name`,
		`c.yaml:16: routes[1].cache.ttl`,
		`c.yaml:17: routes[2].cache`,
		`c.yaml:18: routes[3].cache.max_object_bytes: must be at most 256MiB`,
		`c.yaml:18: routes[3].cache.stale_while_revalidate: duration "-5s" must not be negative`,
		`c.yaml:18: routes[3].cache.stale_if_error`,
	} {
		if !strings.Contains(got, w) {
			t.Errorf("missing %q in:\n%s", w, got)
		}
	}
	t.Log(got)

	cfg, err := Parse("c.yaml", []byte(`admin: { listen: "off" }
upstreams:
  u: { targets: [ { url: "http://127.0.0.1:9001" } ] }
routes:
  - { name: r, match: { prefix: / }, upstream: u, cache: { ttl: 30s, key: { query_deny: [utm_source] } } }
  - { name: s, match: { prefix: /s/ }, upstream: u, cache: { enabled: false } }
  - { name: n, match: { prefix: /n/ }, upstream: u }
`), nil)
	if err != nil {
		t.Fatal(err)
	}
	c := cfg.CacheFor(cfg.Routes[0])
	if c == nil || c.TTL.D() != 30*time.Second || c.Key.Query != "deny" || c.MaxVary != 8 || c.MaxObjectBytes != 1<<20 {
		t.Errorf("route defaults: %+v", c)
	}
	if cfg.Cache.Store != "memory" || cfg.Cache.MemoryBytes != 256<<20 || cfg.Cache.LockTimeout.D() != 5*time.Second {
		t.Errorf("top-level defaults: %+v", cfg.Cache)
	}
	if cfg.CacheFor(cfg.Routes[1]) != nil || cfg.CacheFor(cfg.Routes[2]) != nil {
		t.Error("enabled: false, or no block, must not cache")
	}
}
