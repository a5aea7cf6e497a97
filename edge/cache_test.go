package edge

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
)

// cacheUpstream is an upstream whose answer the test writes, counting
// the requests that reach it.
type cacheUpstream struct {
	*httptest.Server
	hits atomic.Int64
}

func startCacheUpstream(t testing.TB, h http.HandlerFunc) *cacheUpstream {
	t.Helper()
	u := &cacheUpstream{}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.hits.Add(1)
		h(w, r)
	}))
	t.Cleanup(u.Close)
	return u
}

// cacheConfig is one upstream and a caching catch-all route with block.
func cacheConfig(url, top, block string) string {
	return `
listen: 127.0.0.1:0
admin: { listen: "off" }
` + top + `
upstreams:
  up:
    targets: [ { url: "` + url + `" } ]
routes:
  - name: all
    match: { prefix: / }
    upstream: up
    cache: ` + block + "\n"
}

func TestCacheHitAfterMiss(t *testing.T) {
	up := startCacheUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Content-Type", "text/plain")
		w.Write([]byte("hello " + r.URL.RawQuery))
	})
	g := startGateway(t, cacheConfig(up.URL, "", "{}"))
	r1 := g.get(t, "/a?x=1&y=2")
	r2 := g.get(t, "/a?y=2&x=1")
	if r1.body != "hello x=1&y=2" || r2.body != r1.body {
		t.Fatalf("bodies %q %q", r1.body, r2.body)
	}
	if n := up.hits.Load(); n != 1 {
		t.Fatalf("upstream saw %d requests, want 1", n)
	}
	if cs := r2.header.Get("Cache-Status"); !strings.HasPrefix(cs, "sluice; hit") {
		t.Errorf("Cache-Status %q", cs)
	}
	if r2.header.Get("Age") == "" || r2.header.Get("Content-Type") != "text/plain" {
		t.Errorf("headers %v", r2.header)
	}
	t.Logf("%v %v", r1.header, r2.header)
}

// The cache stores the upstream's identity-encoded answer and compression
// applies on the way out: a gzip client's hit is compressed, and the
// entry it came from is untouched, so an identity client still gets the
// plain body from it.
func TestCacheHitsCompressedOnTheWayOut(t *testing.T) {
	plain := strings.Repeat("compress me please ", 200)
	up := startCacheUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("Content-Length", strconv.Itoa(len(plain)))
		w.Write([]byte(plain))
	})
	g := startGateway(t, cacheConfig(up.URL, "compression: {}", "{}"))
	g.get(t, "/c") // stored
	for i := range 3 {
		gz := g.do(t, request{path: "/c", headers: map[string]string{"Accept-Encoding": "gzip"}})
		if gz.header.Get("Content-Encoding") != "gzip" || len(gz.body) >= len(plain) || !strings.HasPrefix(gz.header.Get("Cache-Status"), "sluice; hit") {
			t.Fatalf("round %d, gzip client: %q, %d bytes, %q", i, gz.header.Get("Content-Encoding"), len(gz.body), gz.header.Get("Cache-Status"))
		}
		id := g.get(t, "/c")
		if id.body != plain || id.header.Get("Content-Encoding") != "" {
			t.Fatalf("round %d, identity client after a gzip hit: %d bytes, encoding %q", i, len(id.body), id.header.Get("Content-Encoding"))
		}
	}
	if n := up.hits.Load(); n != 1 {
		t.Fatalf("upstream saw %d requests, want 1", n)
	}
}

// primaryKey is the stored key of a plain (plain http, no keyed headers,
// no identity) request for url ("GET host/path?query") on route.
func primaryKey(url, route string) []byte {
	return []byte(url + "\x00r:" + route + "\x00s:http")
}
