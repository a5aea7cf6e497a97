package config

import (
	"fmt"
	"strings"
	"time"
)

// Cache is the top-level response cache block: where entries are kept
// and the defaults of every route's cache block. A route caches only
// when it has a cache block of its own (README "Response cache").
type Cache struct {
	// Store is memory (default), redis (shared by every instance; needs a
	// redis block) or both (memory in front of Redis).
	Store string `yaml:"store" json:"store,omitempty"`
	// MemoryBytes bounds the memory tier. Default 256MiB.
	MemoryBytes ByteSize `yaml:"memory_bytes" json:"memory_bytes,omitempty"`
	// MaxObjectBytes is the largest body stored; larger answers pass
	// through uncached. Default 1MiB. At most server.buffer_response_bytes
	// matters: larger answers stream and are never stored.
	MaxObjectBytes ByteSize `yaml:"max_object_bytes" json:"max_object_bytes,omitempty"`
	// LockTimeout bounds how long a request waits for another request's
	// fetch of the same key (coalescing) before going upstream itself.
	// Default 5s.
	LockTimeout Duration `yaml:"lock_timeout" json:"lock_timeout,omitempty"`
}

// RouteCache turns the cache on for a route.
type RouteCache struct {
	// Enabled: false turns the block off without removing it. Default true.
	Enabled *bool `yaml:"enabled" json:"enabled,omitempty"`
	// TTL is the freshness lifetime of answers that give none (no
	// Cache-Control max-age/s-maxage, no Expires), for the status codes
	// RFC 9110 lets a cache store that way (200, 301, 404...). 0: such
	// answers are not stored.
	TTL Duration `yaml:"ttl" json:"ttl,omitempty"`
	// StaleWhileRevalidate and StaleIfError apply when the upstream's
	// Cache-Control names no window of its own (RFC 5861).
	StaleWhileRevalidate Duration `yaml:"stale_while_revalidate" json:"stale_while_revalidate,omitempty"`
	StaleIfError         Duration `yaml:"stale_if_error" json:"stale_if_error,omitempty"`
	// MaxObjectBytes overrides cache.max_object_bytes for the route.
	MaxObjectBytes ByteSize `yaml:"max_object_bytes" json:"max_object_bytes,omitempty"`
	// Authorized lets requests with credentials (Authorization, the API
	// key header) be cached; a hash of the caller's identity (the
	// credentials, subject, roles and forwarded claims) is then part of
	// the key, so no caller gets another's answer. Default false: such
	// requests bypass the cache (RFC 9111 3.5).
	Authorized bool `yaml:"authorized" json:"authorized,omitempty"`
	// Cookies lets requests carrying a Cookie be cached (and served to
	// callers without one). Default false: they bypass the cache, since
	// an upstream personalising from a session cookie rarely says so in
	// Cache-Control. Opt in for routes whose answers don't depend on
	// cookies, or key on them (key.headers: [cookie]).
	Cookies bool `yaml:"cookies" json:"cookies,omitempty"`
	// Key says what else the key holds besides method, host and path.
	Key CacheKey `yaml:"key" json:"key,omitempty"`
	// MaxVary bounds the fields an answer may Vary on (more: not stored).
	// Default 8.
	MaxVary int `yaml:"max_vary" json:"max_vary,omitempty"`
}

// CacheKey says which query parameters and request fields are part of a
// cache key.
type CacheKey struct {
	// Query is all (default: every parameter, sorted), none, or a list
	// through QueryAllow / QueryDeny.
	Query string `yaml:"query" json:"query,omitempty"`
	// QueryAllow keeps only these parameters; QueryDeny drops these
	// (utm_source, fbclid...). At most one of them.
	QueryAllow []string `yaml:"query_allow" json:"query_allow,omitempty"`
	QueryDeny  []string `yaml:"query_deny" json:"query_deny,omitempty"`
	// Headers whose values are part of the key (for answers that depend
	// on a field the upstream does not name in Vary).
	Headers []string `yaml:"headers" json:"headers,omitempty"`
}

// On reports whether the block turns caching on.
func (c *RouteCache) On() bool { return c != nil && (c.Enabled == nil || *c.Enabled) }

// Cache store kinds.
var CacheStores = []string{"memory", "redis", "both"}

// CacheFor is the route's cache block, nil when it does not cache.
func (c *Config) CacheFor(r *Route) *RouteCache {
	if r == nil || !r.Cache.On() {
		return nil
	}
	return r.Cache
}

// CacheOn reports whether any route caches.
func (c *Config) CacheOn() bool {
	for _, r := range c.Routes {
		if c.CacheFor(r) != nil {
			return true
		}
	}
	return false
}

func (c *Config) cacheDefaults() {
	if c.Cache == nil {
		c.Cache = &Cache{}
	}
	k := c.Cache
	setStr(&k.Store, "memory")
	setSize(&k.MemoryBytes, 256<<20)
	setSize(&k.MaxObjectBytes, 1<<20)
	setDur(&k.LockTimeout, 5*time.Second)
	for _, r := range c.Routes {
		if r == nil || r.Cache == nil {
			continue
		}
		setSize(&r.Cache.MaxObjectBytes, int64(k.MaxObjectBytes))
		setInt(&r.Cache.MaxVary, 8)
		if r.Cache.Key.Query == "" {
			switch {
			case len(r.Cache.Key.QueryAllow) > 0:
				r.Cache.Key.Query = "allow"
			case len(r.Cache.Key.QueryDeny) > 0:
				r.Cache.Key.Query = "deny"
			default:
				r.Cache.Key.Query = "all"
			}
		}
	}
}

// cache checks the top-level block and every route's.
func (v *validator) cache(c *Config) {
	k := c.Cache
	if k == nil {
		return
	}
	switch k.Store {
	case "memory":
	case "redis", "both":
		if c.Redis == nil {
			v.add("cache.store", "%q needs a redis block (redis.addrs)", k.Store)
		}
	default:
		v.add("cache.store", "unknown store %q (memory, redis or both)", k.Store)
	}
	if k.MemoryBytes < 0 {
		v.add("cache.memory_bytes", "must not be negative")
	}
	v.maxObject("cache.max_object_bytes", k.MaxObjectBytes, k)
	if k.LockTimeout.D() > time.Minute {
		v.add("cache.lock_timeout", "must be at most 1m, got %v (a waiting request holds its connection)", k.LockTimeout.D())
	}
	for i, r := range c.Routes {
		if r == nil || r.Cache == nil {
			continue
		}
		p := fmt.Sprintf("routes[%d].cache", i)
		rc := r.Cache
		if rc.MaxObjectBytes != k.MaxObjectBytes { // the default is checked once, above
			v.maxObject(p+".max_object_bytes", rc.MaxObjectBytes, k)
		}
		if rc.MaxVary < 0 || rc.MaxVary > 64 {
			v.add(p+".max_vary", "want 0..64, got %d", rc.MaxVary)
		}
		if len(rc.Key.QueryAllow) > 0 && len(rc.Key.QueryDeny) > 0 {
			v.add(p+".key.query_deny", "query_allow and query_deny can't both be set")
		}
		switch q := rc.Key.Query; {
		case q != "all" && q != "none" && q != "allow" && q != "deny":
			v.add(p+".key.query", "unknown mode %q (all, none, allow or deny)", q)
		case q == "allow" && len(rc.Key.QueryAllow) == 0, q == "deny" && len(rc.Key.QueryDeny) == 0:
			v.add(p+".key.query", "%q needs query_%s", q, q)
		case len(rc.Key.QueryAllow) > 0 && q != "allow", len(rc.Key.QueryDeny) > 0 && q != "deny" && len(rc.Key.QueryAllow) == 0:
			v.add(p+".key.query", "%q with a query_allow / query_deny list (leave query out, or set it to the list's mode)", q)
		}
		for j, name := range append(append([]string(nil), rc.Key.QueryAllow...), rc.Key.QueryDeny...) {
			if name == "" || strings.ContainsAny(name, "&=#? ") {
				field := fmt.Sprintf("%s.key.query_allow[%d]", p, j)
				if j >= len(rc.Key.QueryAllow) {
					field = fmt.Sprintf("%s.key.query_deny[%d]", p, j-len(rc.Key.QueryAllow))
				}
				v.add(field, "%q is not a query parameter name", name)
			}
		}
		for j, h := range rc.Key.Headers {
			if !validToken(h) {
				v.add(fmt.Sprintf("%s.key.headers[%d]", p, j), "%q is not a header name", h)
			}
		}
	}
}

// MaxObjectLimit bounds max_object_bytes: each streamed answer being
// stored holds up to that much (cacheTee), and the memory tier weighs an
// entry in 32 bits.
const MaxObjectLimit = 256 << 20

// maxObject checks a max_object_bytes: not negative, at most
// MaxObjectLimit, and with a memory tier at most memory_bytes (a larger
// entry could never be kept).
func (v *validator) maxObject(field string, n ByteSize, k *Cache) {
	switch {
	case n < 0:
		v.add(field, "must not be negative")
	case n > MaxObjectLimit:
		v.add(field, "must be at most 256MiB, got %d bytes (each answer being stored is held whole)", int64(n))
	case k.Store != "redis" && k.MemoryBytes > 0 && n > k.MemoryBytes:
		v.add(field, "must be at most cache.memory_bytes (%d), got %d", int64(k.MemoryBytes), int64(n))
	}
}
