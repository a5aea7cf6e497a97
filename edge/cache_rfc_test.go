package edge

import (
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicegw/sluice/internal/testutil"
)

// rfcUpstream answers by path, so each case of the table has its own
// key and its own upstream behaviour.
func rfcUpstream(t *testing.T) *cacheUpstream {
	return startCacheUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Type", "text/plain")
		body := "body of " + r.URL.Path
		switch r.URL.Path {
		case "/max-age", "/host", "/head":
			h.Set("Cache-Control", "max-age=60")
		case "/s-maxage":
			h.Set("Cache-Control", "max-age=0, s-maxage=60")
		case "/no-store":
			h.Set("Cache-Control", "max-age=60, no-store")
		case "/private":
			h.Set("Cache-Control", "private, max-age=60")
		case "/cookie":
			h.Set("Cache-Control", "max-age=60")
			h.Set("Set-Cookie", "session=secret-of-first-client")
		case "/vary":
			h.Set("Cache-Control", "max-age=60")
			h.Set("Vary", "Accept-Language")
			body = "lang " + r.Header.Get("Accept-Language")
		case "/vary-star":
			h.Set("Cache-Control", "max-age=60")
			h.Set("Vary", "*")
		case "/expires":
			h.Set("Date", time.Now().UTC().Format(http.TimeFormat))
			h.Set("Expires", time.Now().Add(time.Hour).UTC().Format(http.TimeFormat))
		case "/expires-invalid":
			h.Set("Expires", "0")
		case "/no-freshness":
		case "/redirect-no-freshness":
			w.WriteHeader(http.StatusForbidden)
		case "/error":
			h.Set("Cache-Control", "max-age=60")
			w.WriteHeader(http.StatusInternalServerError)
		case "/age":
			h.Set("Cache-Control", "max-age=600")
			h.Set("Age", "100")
		case "/no-cache-etag":
			h.Set("Cache-Control", "no-cache")
			h.Set("ETag", `"v1"`)
			if r.Header.Get("If-None-Match") == `"v1"` {
				w.WriteHeader(http.StatusNotModified)
				return
			}
		case "/etag":
			h.Set("Cache-Control", "max-age=60")
			h.Set("ETag", `"v7"`)
			h.Set("Last-Modified", "Wed, 01 Jan 2025 00:00:00 GMT")
		case "/swr":
			h.Set("Cache-Control", "max-age=0, stale-while-revalidate=60")
		}
		w.Write([]byte(body))
	})
}

// TestCacheRFC9111 runs each case's requests in order against one
// gateway and checks what the client got and how many requests the
// upstream saw for that path.
func TestCacheRFC9111(t *testing.T) {
	up := rfcUpstream(t)
	g := startGateway(t, cacheConfig(up.URL, "", "{ ttl: 30s }"))
	type step struct {
		req        request
		wantStatus int
		wantBody   string // "" : not checked
		wantCS     string // Cache-Status prefix; "": not checked
	}
	cases := []struct {
		name     string
		steps    []step
		upstream int64 // requests the upstream must have seen for the case
	}{
		{"RFC 9111 5.2.2.1 max-age: second request is a hit", []step{
			{req: request{path: "/max-age"}, wantStatus: 200, wantCS: "sluice; fwd=miss; stored"},
			{req: request{path: "/max-age"}, wantStatus: 200, wantBody: "body of /max-age", wantCS: "sluice; hit"},
		}, 1},
		{"RFC 9111 5.2.2.10 s-maxage wins over max-age for a shared cache", []step{
			{req: request{path: "/s-maxage"}, wantStatus: 200},
			{req: request{path: "/s-maxage"}, wantStatus: 200, wantCS: "sluice; hit"},
		}, 1},
		{"RFC 9111 5.2.2.5 no-store is never stored", []step{
			{req: request{path: "/no-store"}, wantStatus: 200, wantCS: "sluice; fwd=miss; detail=no-store"},
			{req: request{path: "/no-store"}, wantStatus: 200},
		}, 2},
		{"RFC 9111 5.2.2.7 private is not stored by a shared cache", []step{
			{req: request{path: "/private"}, wantStatus: 200, wantCS: "sluice; fwd=miss; detail=private"},
			{req: request{path: "/private"}, wantStatus: 200},
		}, 2},
		{"RFC 9111 7.3: an answer with Set-Cookie is not stored, so no cookie is replayed", []step{
			{req: request{path: "/cookie"}, wantStatus: 200, wantCS: "sluice; fwd=miss; detail=set-cookie"},
			{req: request{path: "/cookie"}, wantStatus: 200},
		}, 2},
		{"RFC 9111 4.1 Vary: each Accept-Language its own entry, normalised", []step{
			{req: request{path: "/vary", headers: map[string]string{"Accept-Language": "en"}}, wantBody: "lang en", wantStatus: 200},
			{req: request{path: "/vary", headers: map[string]string{"Accept-Language": "fr"}}, wantBody: "lang fr", wantStatus: 200},
			{req: request{path: "/vary", headers: map[string]string{"Accept-Language": "EN"}}, wantBody: "lang en", wantStatus: 200, wantCS: "sluice; hit"},
			{req: request{path: "/vary", headers: map[string]string{"Accept-Language": "fr"}}, wantBody: "lang fr", wantStatus: 200, wantCS: "sluice; hit"},
		}, 2},
		{"RFC 9111 4.1 Vary: * never matches, not stored", []step{
			{req: request{path: "/vary-star"}, wantStatus: 200, wantCS: "sluice; fwd=miss; detail=vary"},
			{req: request{path: "/vary-star"}, wantStatus: 200},
		}, 2},
		{"RFC 9111 5.3 Expires minus Date is the lifetime", []step{
			{req: request{path: "/expires"}, wantStatus: 200},
			{req: request{path: "/expires"}, wantStatus: 200, wantCS: "sluice; hit"},
		}, 1},
		{"RFC 9111 5.3 an invalid Expires is already expired", []step{
			{req: request{path: "/expires-invalid"}, wantStatus: 200},
			{req: request{path: "/expires-invalid"}, wantStatus: 200},
		}, 2},
		{"RFC 9111 4.2.2 heuristic freshness: the route's ttl for a 200 that says nothing", []step{
			{req: request{path: "/no-freshness"}, wantStatus: 200},
			{req: request{path: "/no-freshness"}, wantStatus: 200, wantCS: "sluice; hit"},
		}, 1},
		{"RFC 9110 15.1: a 403 is not heuristically cacheable (the route ttl does not apply)", []step{
			{req: request{path: "/redirect-no-freshness"}, wantStatus: 403, wantCS: "sluice; fwd=miss; detail=status"},
			{req: request{path: "/redirect-no-freshness"}, wantStatus: 403},
		}, 2},
		{"RFC 9111 3: a 500 is not stored", []step{
			{req: request{path: "/error"}, wantStatus: 500},
			{req: request{path: "/error"}, wantStatus: 500},
		}, 2},
		{"RFC 9111 3.5: a request with Authorization bypasses the cache", []step{
			{req: request{path: "/max-age?auth", headers: map[string]string{"Authorization": "Bearer a"}}, wantStatus: 200, wantCS: "sluice; fwd=bypass"},
			{req: request{path: "/max-age?auth", headers: map[string]string{"authorization": "Bearer a"}}, wantStatus: 200, wantCS: "sluice; fwd=bypass"},
		}, 2},
		{"RFC 9111 5.2.1.4 request no-cache revalidates upstream", []step{
			{req: request{path: "/max-age?nc"}, wantStatus: 200},
			{req: request{path: "/max-age?nc", headers: map[string]string{"Cache-Control": "no-cache"}}, wantStatus: 200, wantCS: "sluice; fwd=stale"},
		}, 2},
		{"RFC 9111 4.2.3 Age counts the upstream's Age", []step{
			{req: request{path: "/age"}, wantStatus: 200},
			{req: request{path: "/age"}, wantStatus: 200, wantCS: "sluice; hit"},
		}, 1},
		{"RFC 9111 4.3.2: the client's If-None-Match gets 304 from the cache", []step{
			{req: request{path: "/etag"}, wantStatus: 200},
			{req: request{path: "/etag", headers: map[string]string{"If-None-Match": `W/"v7"`}}, wantStatus: 304, wantCS: "sluice; hit"},
			{req: request{path: "/etag", headers: map[string]string{"If-None-Match": `"other"`}}, wantStatus: 200, wantBody: "body of /etag"},
			{req: request{path: "/etag", headers: map[string]string{"If-Modified-Since": "Thu, 02 Jan 2025 00:00:00 GMT"}}, wantStatus: 304},
		}, 1},
		{"RFC 9111 4.3.2: a first conditional request is stored, then answered 304", []step{
			{req: request{path: "/etag?first", headers: map[string]string{"If-None-Match": `"v7"`}}, wantStatus: 304, wantCS: "sluice; fwd=miss; stored"},
			{req: request{path: "/etag?first"}, wantStatus: 200, wantBody: "body of /etag", wantCS: "sluice; hit"},
		}, 1},
		{"RFC 9111 4.3.1/4.3.4 no-cache: revalidated with If-None-Match, 304 refreshes", []step{
			{req: request{path: "/no-cache-etag"}, wantStatus: 200},
			{req: request{path: "/no-cache-etag"}, wantStatus: 200, wantBody: "body of /no-cache-etag", wantCS: "sluice; fwd=stale; fwd-status=304"},
		}, 2},
		{"Host: case and default port are one key (RFC 3986 6.2.3)", []step{
			{req: request{path: "/host", host: "Example.COM:80"}, wantStatus: 200},
			{req: request{path: "/host", host: "example.com"}, wantStatus: 200, wantCS: "sluice; hit"},
			{req: request{path: "/host", host: "other.example"}, wantStatus: 200, wantCS: "sluice; fwd=miss"},
		}, 2},
		{"RFC 9110 9.3.2 HEAD is answered from the GET's entry, without a body", []step{
			{req: request{path: "/head"}, wantStatus: 200},
			{req: request{method: "HEAD", path: "/head"}, wantStatus: 200, wantBody: "", wantCS: "sluice; hit"},
		}, 1},
		{"RFC 9111 5.2.1.7 only-if-cached: a stored answer, else 504 without going upstream", []step{
			{req: request{path: "/max-age?oic", headers: map[string]string{"Cache-Control": "only-if-cached"}}, wantStatus: 504},
			{req: request{path: "/max-age?oic"}, wantStatus: 200},
			{req: request{path: "/max-age?oic", headers: map[string]string{"Cache-Control": "only-if-cached"}}, wantStatus: 200, wantCS: "sluice; hit"},
		}, 1},
		{"RFC 9110 9.3.2: a HEAD that goes upstream never stores its empty body for GETs", []step{
			{req: request{path: "/max-age?head"}, wantStatus: 200},
			{req: request{method: "HEAD", path: "/max-age?head", headers: map[string]string{"Cache-Control": "no-cache"}}, wantStatus: 200},
			{req: request{path: "/max-age?head"}, wantStatus: 200, wantBody: "body of /max-age", wantCS: "sluice; hit"},
		}, 2},
		{"RFC 9111 4 and 4.4: POST is not served from the cache, and invalidates the URI's entry", []step{
			{req: request{path: "/max-age?post"}, wantStatus: 200},
			{req: request{path: "/max-age?post"}, wantStatus: 200, wantCS: "sluice; hit"},
			{req: request{method: "POST", path: "/max-age?post"}, wantStatus: 200, wantCS: "sluice; fwd=bypass"},
			{req: request{path: "/max-age?post"}, wantStatus: 200, wantCS: "sluice; fwd=miss"},
		}, 3},
		{"RFC 9111 4.4: DELETE invalidates every variant of the URI (through the index)", []step{
			{req: request{path: "/vary?del", headers: map[string]string{"Accept-Language": "en"}}, wantStatus: 200},
			{req: request{path: "/vary?del", headers: map[string]string{"Accept-Language": "en"}}, wantStatus: 200, wantCS: "sluice; hit"},
			{req: request{method: "DELETE", path: "/vary?del"}, wantStatus: 200},
			{req: request{path: "/vary?del", headers: map[string]string{"Accept-Language": "en"}}, wantStatus: 200, wantCS: "sluice; fwd=miss"},
		}, 3},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := up.hits.Load()
			for i, s := range tc.steps {
				r := g.do(t, s.req)
				if r.status != s.wantStatus {
					t.Fatalf("step %d: status %d, want %d (%s)", i, r.status, s.wantStatus, r.header.Get("Cache-Status"))
				}
				if s.wantBody != "" && r.body != s.wantBody {
					t.Errorf("step %d: body %q, want %q", i, r.body, s.wantBody)
				}
				if s.req.method == "HEAD" && r.body != "" {
					t.Errorf("step %d: HEAD answered with a body %q", i, r.body)
				}
				if cs := r.header.Get("Cache-Status"); s.wantCS != "" && !strings.HasPrefix(cs, s.wantCS) {
					t.Errorf("step %d: Cache-Status %q, want %q...", i, cs, s.wantCS)
				}
				if sc := r.header.Get("Set-Cookie"); i > 0 && sc != "" && s.req.path == "/cookie" && r.header.Get("Cache-Status") != "" && strings.Contains(r.header.Get("Cache-Status"), "hit") {
					t.Errorf("step %d: a cookie replayed from the cache", i)
				}
				if tc.name == "RFC 9111 4.2.3 Age counts the upstream's Age" && i == 1 {
					// Compared as numbers: as strings "5" < "100" is false.
					if age, err := strconv.Atoi(r.header.Get("Age")); err != nil || age < 100 {
						t.Errorf("Age %q, want at least the upstream's 100", r.header.Get("Age"))
					}
				}
			}
			if n := up.hits.Load() - before; n != tc.upstream {
				t.Errorf("upstream saw %d requests, want %d", n, tc.upstream)
			}
		})
	}
}

// TestCacheStaleWhileRevalidate: a stale entry inside its
// stale-while-revalidate window is served at once and refreshed in the
// background (RFC 5861 3).
func TestCacheStaleWhileRevalidate(t *testing.T) {
	var n atomic.Int64
	up := startCacheUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=0, stale-while-revalidate=600")
		w.Write([]byte("v" + strconv.FormatInt(n.Add(1), 10)))
	})
	g := startGateway(t, cacheConfig(up.URL, "", "{}"))
	g.get(t, "/swr")
	r := g.get(t, "/swr")
	if cs := r.header.Get("Cache-Status"); !strings.Contains(cs, "detail=stale-while-revalidate") || r.body != "v1" {
		t.Fatalf("second request: %q %q, want the stale v1 at once", cs, r.body)
	}
	// The refresh stored the upstream's new answer: the store holds v2.
	key := primaryKey("GET "+g.addr+"/swr", "all")
	testutil.WaitFor(t, "the background refresh to store v2", func() bool {
		e, ok := g.res.cacheMem.Get(t.Context(), key)
		return ok && string(e.Body) == "v2"
	})
	if r := g.get(t, "/swr"); r.body != "v2" {
		t.Fatalf("after the refresh: %q (%s), want the refreshed v2", r.body, r.header.Get("Cache-Status"))
	}
}

// TestCacheStaleIfError: with the upstream gone, a stale entry inside its
// stale-if-error window is served instead of the 502 (RFC 5861 4).
func TestCacheStaleIfError(t *testing.T) {
	up := startCacheUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=0, stale-if-error=600")
		w.Write([]byte("kept"))
	})
	g := startGateway(t, cacheConfig(up.URL, "", "{}"))
	if r := g.get(t, "/sie"); r.body != "kept" {
		t.Fatalf("first: %d %q", r.status, r.body)
	}
	up.Close() // the upstream is killed
	r := g.get(t, "/sie")
	if r.status != 200 || r.body != "kept" || !strings.Contains(r.header.Get("Cache-Status"), "detail=stale-if-error") {
		t.Fatalf("with the upstream down: %d %q %q, want the stale answer", r.status, r.body, r.header.Get("Cache-Status"))
	}
	// Without an entry, the same outage is the usual 502.
	if r := g.get(t, "/sie-other"); r.status != 502 {
		t.Fatalf("uncached path: %d, want 502", r.status)
	}
}

// TestCacheStaleIfErrorCircuitOpen: once the upstream's circuit is open,
// sluice's own 503 counts as an error too, and the stale entry is served.
func TestCacheStaleIfErrorCircuitOpen(t *testing.T) {
	up := startCacheUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=0, stale-if-error=600")
		w.Write([]byte("kept"))
	})
	g := startGateway(t, `
listen: 127.0.0.1:0
admin: { listen: "off" }
upstreams:
  up:
    targets: [ { url: "`+up.URL+`" } ]
    circuit: { failures: 1, open_for: 10m }
routes:
  - { name: all, match: { prefix: / }, upstream: up, cache: {} }
`)
	if r := g.get(t, "/sie"); r.body != "kept" {
		t.Fatalf("first: %d %q", r.status, r.body)
	}
	up.Close()
	g.get(t, "/sie") // a connect failure: opens the circuit
	r := g.get(t, "/sie")
	if r.status != 200 || r.body != "kept" || !strings.Contains(r.header.Get("Cache-Status"), "fwd-status=503") {
		t.Fatalf("circuit open: %d %q %q, want the stale answer over a 503", r.status, r.body, r.header.Get("Cache-Status"))
	}
	if r := g.get(t, "/other"); r.status != 503 {
		t.Fatalf("uncached path with the circuit open: %d, want 503", r.status)
	}
}

// A stale-while-revalidate refresh of a streamed answer (above the
// buffer) stores the new one: the background fetch reads it through.
func TestCacheStaleWhileRevalidateStreamed(t *testing.T) {
	var n atomic.Int64
	up := startCacheUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		body := strings.Repeat(strconv.FormatInt(n.Add(1), 10), 100<<10)[:100<<10]
		w.Header().Set("Cache-Control", "max-age=0, stale-while-revalidate=600")
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.Write([]byte(body))
	})
	g := startGateway(t, cacheConfig(up.URL, "server: { buffer_response_bytes: 16KiB }", "{}"))
	key := primaryKey("GET "+g.addr+"/big", "all")
	g.get(t, "/big")
	testutil.WaitFor(t, "the first answer stored", func() bool { _, ok := g.res.cacheMem.Get(t.Context(), key); return ok })
	if r := g.get(t, "/big"); r.body[0] != '1' || !strings.Contains(r.header.Get("Cache-Status"), "stale-while-revalidate") {
		t.Fatalf("second: %q... %q, want the first answer, stale", r.body[:1], r.header.Get("Cache-Status"))
	}
	testutil.WaitFor(t, "the refreshed answer stored", func() bool {
		e, ok := g.res.cacheMem.Get(t.Context(), key)
		return ok && e.Body[0] == '2'
	})
}
