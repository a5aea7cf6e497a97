package edge

import (
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/sluicegw/sluice/edge/cache"
	"github.com/sluicegw/sluice/internal/testutil"
)

// Regression tests for the findings of the response cache's review: each
// is named for the failure it pins.

// A HEAD inside the stale-while-revalidate window starts a background
// refresh; that refresh must be a GET, or the upstream's bodiless answer
// to a HEAD is stored under the GET key (RFC 9110 9.3.2: a HEAD answer
// has no content).
func TestCacheHeadBackgroundRefreshDoesNotEmptyEntry(t *testing.T) {
	up := startCacheUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=0, stale-while-revalidate=600")
		w.Header().Set("Content-Type", "text/plain")
		w.Write([]byte("full body"))
	})
	g := startGateway(t, cacheConfig(up.URL, "", "{}"))
	if r := g.get(t, "/p"); r.body != "full body" {
		t.Fatalf("first GET got %q", r.body)
	}
	g.do(t, request{method: "HEAD", path: "/p"})
	testutil.WaitFor(t, "the HEAD's background refresh", func() bool { return up.hits.Load() == 2 })
	// Each GET is answered stale and starts its own refresh: the third
	// upstream hit means the HEAD's refresh has finished storing.
	testutil.WaitFor(t, "a GET after the refresh", func() bool {
		r := g.get(t, "/p")
		if r.body != "full body" {
			t.Fatalf("GET after a HEAD-triggered refresh got %q (Cache-Status %q)", r.body, r.header.Get("Cache-Status"))
		}
		return up.hits.Load() >= 3
	})
	if r := g.get(t, "/p"); r.body != "full body" {
		t.Fatalf("GET got %q (Cache-Status %q)", r.body, r.header.Get("Cache-Status"))
	}
}

// A HEAD with Cache-Control: max-age=0 on a fresh entry must not replace
// the entry with a bodiless one (RFC 9111 5.2.1.1 sends it upstream; its
// answer is a HEAD's and is not stored).
func TestCacheHeadMaxAgeZeroDoesNotEmptyEntry(t *testing.T) {
	up := startCacheUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		w.Write([]byte("full body"))
	})
	g := startGateway(t, cacheConfig(up.URL, "", "{}"))
	g.get(t, "/p")
	h := g.do(t, request{method: "HEAD", path: "/p", headers: map[string]string{"Cache-Control": "max-age=0"}})
	if h.status != 200 {
		t.Fatalf("HEAD got %d", h.status)
	}
	testutil.WaitFor(t, "the HEAD reached upstream", func() bool { return up.hits.Load() == 2 })
	for range 3 {
		if r := g.get(t, "/p"); r.body != "full body" {
			t.Fatalf("GET after HEAD max-age=0 got %q (%s)", r.body, r.header.Get("Cache-Status"))
		}
	}
	if n := up.hits.Load(); n != 2 {
		t.Fatalf("upstream hits %d, want 2 (the GETs are hits)", n)
	}
}

// RFC 9111 5.2.1.1: a request's max-age=0 (a browser reload) does not
// accept a stored answer older than 0 s: the cache goes upstream (and
// stores the new answer), even within stale-while-revalidate; a larger
// request max-age the entry's age is within is a hit.
func TestCacheRequestMaxAgeZeroGoesUpstream(t *testing.T) {
	for _, cc := range []string{"max-age=60", "max-age=60, stale-while-revalidate=600"} {
		t.Run(cc, func(t *testing.T) {
			var n atomic.Int64
			up := startCacheUpstream(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Cache-Control", cc)
				w.Write([]byte("v" + strconv.FormatInt(n.Add(1), 10)))
			})
			g := startGateway(t, cacheConfig(up.URL, "", "{}"))
			g.get(t, "/p")
			if r := g.do(t, request{path: "/p", headers: map[string]string{"Cache-Control": "max-age=3600"}}); r.body != "v1" || !strings.Contains(r.header.Get("Cache-Status"), "hit") {
				t.Fatalf("max-age=3600 request got %q (%s), want the hit v1", r.body, r.header.Get("Cache-Status"))
			}
			r := g.do(t, request{path: "/p", headers: map[string]string{"Cache-Control": "max-age=0"}})
			if r.body != "v2" {
				t.Fatalf("max-age=0 request got %q (%s), want the upstream's new answer v2", r.body, r.header.Get("Cache-Status"))
			}
			if r := g.get(t, "/p"); r.body != "v2" {
				t.Fatalf("GET after the reload got %q (%s), want the stored v2", r.body, r.header.Get("Cache-Status"))
			}
		})
	}
}

// Two routes answering one URL (chosen by a cookie condition, each with
// its own upstream) must not share entries: the route is in the key.
func TestCacheRoutesDoNotShareEntries(t *testing.T) {
	basic := startCacheUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Write([]byte("basic"))
	})
	premium := startCacheUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Write([]byte("premium"))
	})
	g := startGateway(t, `
listen: 127.0.0.1:0
admin: { listen: "off" }
upstreams:
  basic: { targets: [ { url: "`+basic.URL+`" } ] }
  premium: { targets: [ { url: "`+premium.URL+`" } ] }
routes:
  - { name: premium, match: { prefix: /, cookies: { tier: gold } }, upstream: premium, cache: { cookies: true } }
  - { name: basic, match: { prefix: / }, upstream: basic, cache: {} }
`)
	if r := g.do(t, request{path: "/report", headers: map[string]string{"Cookie": "tier=gold"}}); r.body != "premium" {
		t.Fatalf("gold client got %q", r.body)
	}
	if r := g.get(t, "/report"); r.body != "basic" {
		t.Fatalf("basic client got %q (%s)", r.body, r.header.Get("Cache-Status"))
	}
	if r := g.get(t, "/report"); r.body != "basic" || !strings.Contains(r.header.Get("Cache-Status"), "hit") {
		t.Fatalf("basic client again got %q (%s), want basic's own hit", r.body, r.header.Get("Cache-Status"))
	}
	// A key purge names the URL: it takes every route's entry.
	if n, err := g.PurgeCache(cache.Purge{Kind: cache.PurgeKey, Arg: "GET " + g.addr + "/report"}); err != nil || n != 2 {
		t.Fatalf("purge: %d %v, want both routes' entries", n, err)
	}
}

// A request carrying a Cookie bypasses the cache unless the route says
// cookies: true: an upstream personalising from a session cookie without
// Cache-Control (stored by the route's ttl) must not hand one user's page
// to everyone.
func TestCacheCookieRequestBypassesUnlessRouteOptsIn(t *testing.T) {
	up := startCacheUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		if c, _ := r.Cookie("session"); c != nil {
			w.Write([]byte("hello " + c.Value))
			return
		}
		w.Write([]byte("hello anonymous"))
	})
	alice := map[string]string{"Cookie": "session=alice"}
	g := startGateway(t, cacheConfig(up.URL, "", "{ ttl: 30s }"))
	if r := g.do(t, request{path: "/home", headers: alice}); r.body != "hello alice" || r.header.Get("Cache-Status") != "sluice; fwd=bypass" {
		t.Fatalf("alice got %q (%s), want her page, bypassed", r.body, r.header.Get("Cache-Status"))
	}
	if r := g.get(t, "/home"); r.body != "hello anonymous" {
		t.Fatalf("anonymous client got %q (%s)", r.body, r.header.Get("Cache-Status"))
	}
	// Opted in: a Cookie request is cached like any other.
	g = startGateway(t, cacheConfig(up.URL, "", "{ ttl: 30s, cookies: true }"))
	g.do(t, request{path: "/about", headers: alice})
	if r := g.get(t, "/about"); r.body != "hello alice" || !strings.Contains(r.header.Get("Cache-Status"), "hit") {
		t.Fatalf("cookies: true: got %q (%s), want the stored answer", r.body, r.header.Get("Cache-Status"))
	}
}

// authorized: true keys on who the upstream sees, not just the JWT
// subject: two tokens of one subject forwarding different tenant claims
// (or carrying different roles) never share an entry.
func TestCacheAuthorizedKeysForwardedClaims(t *testing.T) {
	up := startCacheUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Write([]byte("invoices of tenant " + r.Header.Get("X-Tenant")))
	})
	g := startGateway(t, `
listen: 127.0.0.1:0
admin: { listen: "off" }
auth:
  jwt:
    keys: [ { id: k1, algorithm: HS256, secret: "`+testSecret+`" } ]
    issuer: https://idp.test
    audience: [api]
    forward_claims: { sub: X-User-ID, tenant: X-Tenant }
upstreams:
  up: { targets: [ { url: "`+up.URL+`" } ] }
routes:
  - { name: r, match: { prefix: / }, upstream: up, auth: jwt, cache: { authorized: true } }
`)
	acme := "Bearer " + signHS(t, map[string]any{"tenant": "acme"})
	globex := "Bearer " + signHS(t, map[string]any{"tenant": "globex"})
	for i, c := range []struct{ token, want string }{{acme, "acme"}, {globex, "globex"}, {acme, "acme"}, {globex, "globex"}} {
		r := g.do(t, request{path: "/invoices", headers: map[string]string{"Authorization": c.token}})
		if r.body != "invoices of tenant "+c.want {
			t.Fatalf("request %d (tenant %s) got %q (%s)", i, c.want, r.body, r.header.Get("Cache-Status"))
		}
		if i >= 2 && !strings.Contains(r.header.Get("Cache-Status"), "hit") {
			t.Fatalf("request %d: the same token again is not a hit: %s", i, r.header.Get("Cache-Status"))
		}
	}
}

// A revalidation whose 304 makes the entry unstorable (private now) must
// not hand the bare 304 to a client that sent no conditional (RFC 9110
// 15.4.5: a 304 answers a conditional request): the client gets the
// stored body under the 304's fields, and the entry is dropped.
func TestCacheRevalidation304NeverReachesUnconditionalClient(t *testing.T) {
	var n atomic.Int64
	up := startCacheUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("ETag", `"v1"`)
		if n.Add(1) == 1 {
			w.Header().Set("Cache-Control", "max-age=0, must-revalidate")
			w.Write([]byte("body"))
			return
		}
		w.Header().Set("Cache-Control", "private, max-age=0")
		if r.Header.Get("If-None-Match") == `"v1"` {
			w.WriteHeader(304)
			return
		}
		w.Write([]byte("fresh body"))
	})
	g := startGateway(t, cacheConfig(up.URL, "", "{}"))
	g.get(t, "/p")
	r := g.get(t, "/p") // unconditional: the cache revalidates with "v1"
	if r.status != 200 || r.body != "body" || r.header.Get("Cache-Control") != "private, max-age=0" {
		t.Fatalf("unconditional GET got %d %q, Cache-Control %q (%s)", r.status, r.body, r.header.Get("Cache-Control"), r.header.Get("Cache-Status"))
	}
	// The entry is gone: the next request is a plain miss, answered whole.
	if r := g.get(t, "/p"); r.status != 200 || r.body != "fresh body" {
		t.Fatalf("next GET got %d %q (%s)", r.status, r.body, r.header.Get("Cache-Status"))
	}
}

// Behind a trusted proxy, X-Forwarded-Proto and -Host reach the upstream,
// which builds redirects and links from them: they are in the key, or an
// http client's redirect to https is served to https clients (a loop).
func TestCacheTrustedForwardedProtoAndHostKeyed(t *testing.T) {
	up := startCacheUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		if r.Header.Get("X-Forwarded-Proto") != "https" {
			// What a redirect to https would say; a body, as the test
			// client follows redirects.
			w.Write([]byte("please use https"))
			return
		}
		w.Write([]byte("page via " + r.Header.Get("X-Forwarded-Host")))
	})
	g := startGateway(t, cacheConfig(up.URL, "server: { trusted_proxies: [127.0.0.0/8] }", "{}"))
	via := func(proto, host string) map[string]string {
		return map[string]string{"X-Forwarded-Proto": proto, "X-Forwarded-Host": host}
	}
	if r := g.do(t, request{path: "/p", host: "shop.example", headers: via("http", "shop.example")}); r.body != "please use https" {
		t.Fatalf("http client got %q", r.body)
	}
	if r := g.do(t, request{path: "/p", host: "shop.example", headers: via("https", "shop.example")}); r.status != 200 || r.body != "page via shop.example" {
		t.Fatalf("https client got %d %q (%s)", r.status, r.body, r.header.Get("Cache-Status"))
	}
	if r := g.do(t, request{path: "/p", host: "shop.example", headers: via("https", "www.shop.example")}); r.body != "page via www.shop.example" {
		t.Fatalf("https client via another host got %q (%s)", r.body, r.header.Get("Cache-Status"))
	}
	if r := g.do(t, request{path: "/p", host: "shop.example", headers: via("HTTPS", "shop.example")}); r.body != "page via shop.example" || !strings.Contains(r.header.Get("Cache-Status"), "hit") {
		t.Fatalf("same scheme and host again got %q (%s), want a hit", r.body, r.header.Get("Cache-Status"))
	}
}

// Parameters of one name keep their order in the key (sorted by name
// alone, stably): ?id=2&id=1 and ?id=1&id=2 are different requests to an
// upstream taking the first.
func TestCacheDuplicateParamOrderKept(t *testing.T) {
	up := startCacheUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Write([]byte("id " + r.URL.Query().Get("id")))
	})
	g := startGateway(t, cacheConfig(up.URL, "", "{}"))
	for _, c := range []struct{ path, want string }{
		{"/p?id=2&id=1", "id 2"}, {"/p?id=1&id=2", "id 1"},
		{"/p?id=3&i%64=4", "id 3"}, {"/p?i%64=4&id=3", "id 4"}, // names compare decoded
		{"/p?x=1&id=1&id=2", "id 1"}, // other names still sort around them
	} {
		if r := g.get(t, c.path); r.body != c.want {
			t.Fatalf("%s got %q (%s), want %q", c.path, r.body, r.header.Get("Cache-Status"), c.want)
		}
	}
}

// allow/deny lists match parameter names decoded, as the upstream reads
// them: ?i%64=evil is id, so it can't hide outside an allow-listed key.
func TestCacheEncodedParamNameCannotCloak(t *testing.T) {
	up := startCacheUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Write([]byte("id " + strings.Join(r.URL.Query()["id"], ",")))
	})
	g := startGateway(t, cacheConfig(up.URL, "", "{ key: { query: allow, query_allow: [id] } }"))
	if r := g.get(t, "/p?i%64=evil&id=1"); r.body != "id evil,1" {
		t.Fatalf("attacker got %q", r.body)
	}
	if r := g.get(t, "/p?id=1"); r.body != "id 1" {
		t.Fatalf("victim ?id=1 got %q (%s)", r.body, r.header.Get("Cache-Status"))
	}
	// A ';' (a separator to some upstreams) in allow/deny mode: not cached.
	if r := g.get(t, "/p?x=1;id=2"); r.header.Get("Cache-Status") != "sluice; fwd=bypass" {
		t.Fatalf("';' query: Cache-Status %q, want a bypass", r.header.Get("Cache-Status"))
	}
}

// On a caching route the upstream is asked for identity: an upstream that
// encodes by Accept-Encoding without saying Vary can't get its br body
// stored and served to a client that accepts only identity. Clients still
// get compressed answers from the route's compression step.
func TestCacheUpstreamAskedForIdentityEncoding(t *testing.T) {
	up := startCacheUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Content-Type", "text/plain")
		if strings.Contains(r.Header.Get("Accept-Encoding"), "br") {
			w.Header().Set("Content-Encoding", "br")
			w.Write([]byte("\x0b\x02\x80hello\x03"))
			return
		}
		w.Write([]byte("hello " + r.Header.Get("Accept-Encoding") + strings.Repeat(".", 2000)))
	})
	g := startGateway(t, cacheConfig(up.URL, "", "{}"))
	g.do(t, request{path: "/p", headers: map[string]string{"Accept-Encoding": "br"}})
	r := g.do(t, request{path: "/p", headers: map[string]string{"Accept-Encoding": "identity"}})
	if r.header.Get("Content-Encoding") != "" || !strings.HasPrefix(r.body, "hello identity.") {
		t.Fatalf("identity client got Content-Encoding %q body %.20q (%s)", r.header.Get("Content-Encoding"), r.body, r.header.Get("Cache-Status"))
	}
	// With compression on the route, a gzip client gets the stored entry gzipped.
	g = startGateway(t, cacheConfig(up.URL, "", "{}\n    compression: {}"))
	g.do(t, request{path: "/q", headers: map[string]string{"Accept-Encoding": "br"}})
	r = g.do(t, request{path: "/q", headers: map[string]string{"Accept-Encoding": "gzip"}})
	if r.header.Get("Content-Encoding") != "gzip" || !strings.Contains(r.header.Get("Cache-Status"), "hit") {
		t.Fatalf("gzip client got Content-Encoding %q (%s), want the entry gzipped", r.header.Get("Content-Encoding"), r.header.Get("Cache-Status"))
	}
}

// Coalescing holds for a streamed answer (above the response buffer,
// within max_object_bytes): the waiters get the entry the leader's copy
// stores once the body has gone by, and the upstream sees one request.
func TestCacheStreamedAnswerCoalesced(t *testing.T) {
	release := make(chan struct{})
	body := strings.Repeat("x", 300<<10)
	up := startCacheUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		<-release
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.Write([]byte(body))
	})
	g := startGateway(t, cacheConfig(up.URL, "server: { buffer_response_bytes: 64KiB }\ncache: { lock_timeout: 1m, max_object_bytes: 1MiB }", "{}"))
	const n = 10
	type result struct{ status, body string }
	done := make(chan result, n)
	for range n {
		go func() {
			r := g.get(t, "/big")
			done <- result{r.header.Get("Cache-Status"), r.body}
		}()
	}
	testutil.WaitFor(t, "the waiters", func() bool { return cacheCount(t, g, "all", "coalesced") == n-1 })
	close(release)
	collapsed := 0
	for range n {
		r := <-done
		if r.body != body {
			t.Fatalf("a client got %d bytes (%s)", len(r.body), r.status)
		}
		if strings.Contains(r.status, "collapsed") {
			collapsed++
		}
	}
	if got := up.hits.Load(); got != 1 || collapsed != n-1 {
		t.Fatalf("upstream saw %d requests, %d answers collapsed, for %d concurrent misses of a streamed answer; want 1 and %d", got, collapsed, n, n-1)
	}
}

// A client's If-None-Match too long to keep aside is still never sent
// upstream: the cache revalidates with its own validator alone (RFC 9111
// 4.3.1), so the upstream's 304 is about the stored entry, never about a
// tag the client holds (which would refresh the entry as if its own tag
// had matched).
func TestCacheLongClientIfNoneMatchNotSentUpstream(t *testing.T) {
	var sent atomic.Value
	up := startCacheUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		sent.Store(strings.Join(r.Header.Values("If-None-Match"), " | "))
		w.Header().Set("ETag", `"v1"`)
		w.Header().Set("Cache-Control", "max-age=0, must-revalidate")
		if r.Header.Get("If-None-Match") != "" {
			w.WriteHeader(304)
			return
		}
		w.Write([]byte("body"))
	})
	g := startGateway(t, cacheConfig(up.URL, "", "{}"))
	g.get(t, "/p")
	long := `"v2", ` + strings.Repeat(`"x", `, 60) + `"y"`
	raw := testutil.RawExchange(t, g.addr, "GET /p HTTP/1.1\r\nHost: "+g.addr+"\r\nif-none-match: "+long+"\r\nConnection: close\r\n\r\n")
	if got := sent.Load(); got != `"v1"` {
		t.Fatalf("upstream got If-None-Match %q, want the cache's own \"v1\" alone", got)
	}
	// The client's tags don't match the entry's: the whole answer.
	if !strings.HasPrefix(raw, "HTTP/1.1 200") || !strings.HasSuffix(raw, "body") {
		t.Fatalf("conditional request got:\n%s", raw)
	}
	// Without a stored entry too: the client's long conditional is not
	// sent (a 304 the cache can't store); the client gets the 200.
	raw = testutil.RawExchange(t, g.addr, "GET /q HTTP/1.1\r\nHost: x\r\nIf-None-Match: "+long+"\r\nConnection: close\r\n\r\n")
	if got := sent.Load(); got != "" || !strings.HasPrefix(raw, "HTTP/1.1 200") {
		t.Fatalf("miss: upstream got If-None-Match %q; client got:\n%s", got, raw)
	}
}

// A 304 that refreshes a Vary variant renews its index too (and the index
// is kept as long as a variant with validators): otherwise the index,
// kept only for the first answer's lifetime, expires and the refreshed
// variant is never found again: every request a full miss.
func TestCacheVariantRefreshKeepsIndex(t *testing.T) {
	up := startCacheUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=1")
		w.Header().Set("Vary", "Accept-Language")
		w.Header().Set("ETag", `"v1"`)
		if r.Header.Get("If-None-Match") == `"v1"` {
			w.WriteHeader(304)
			return
		}
		w.Write([]byte("hello"))
	})
	g := startGateway(t, cacheConfig(up.URL, "", "{}"))
	en := request{path: "/p", headers: map[string]string{"Accept-Language": "en"}}
	g.do(t, en)
	// Two revalidations, a second apart: by the second, an index kept
	// for the first answer's lifetime alone is long gone.
	revalidations := 0
	testutil.WaitFor(t, "two revalidations (the entry stale each second)", func() bool {
		r := g.do(t, en)
		st := r.header.Get("Cache-Status")
		if r.body != "hello" || strings.Contains(st, "fwd=miss") {
			t.Fatalf("after %d revalidations got %q (%s): the variant was lost", revalidations, r.body, st)
		}
		if strings.Contains(st, "fwd-status=304") {
			revalidations++
		}
		return revalidations == 2
	})
	if r := g.do(t, en); r.body != "hello" || !strings.Contains(r.header.Get("Cache-Status"), "hit") {
		t.Fatalf("after the refresh got %q (%s), want a hit", r.body, r.header.Get("Cache-Status"))
	}
}

// A client certificate is a credential: on an mtls route, requests
// bypass the cache unless it says authorized: true, and then each
// certificate (its fingerprint, forwarded upstream) has its own entries.
func TestCacheClientCertificateIsACredential(t *testing.T) {
	serverCA, clientCA := testutil.NewCA(t, "edge"), testutil.NewCA(t, "clients")
	site := serverCA.Issue(t, testutil.LeafOptions{Name: "site", DNS: []string{"a.example"}})
	alice := clientCA.Issue(t, testutil.LeafOptions{Name: "alice", Client: true})
	bob := clientCA.Issue(t, testutil.LeafOptions{Name: "bob", Client: true})
	up := startCacheUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Write([]byte(`{"upstream": "` + r.Header.Get("X-Client-Subject") + `"}`))
	})
	for _, block := range []string{"{}", "{ authorized: true }"} {
		_, addr := startTLSGateway(t, `
listen: 127.0.0.1:0
listen_tls:
  - listen: 127.0.0.1:0
    certificates: [ { cert_file: `+site.CertFile+`, key_file: `+site.KeyFile+` } ]
    client_auth: { mode: require, ca_file: `+clientCA.CertFile+` }
admin: { listen: "off" }
upstreams:
  up: { targets: [ { url: "`+up.URL+`" } ] }
routes:
  - { name: m, match: { prefix: / }, upstream: up, auth: mtls, cache: `+block+` }
`)
		for _, who := range []*testutil.Leaf{alice, bob, alice, bob} {
			code, e, err := mtlsGet(t, addr, "/me", serverCA, who, nil)
			want := "CN=alice,O=sluice tests"
			if who == bob {
				want = "CN=bob,O=sluice tests"
			}
			if err != nil || code != 200 || e.Upstream != want {
				t.Fatalf("cache %s: %s got %d %q %v", block, want, code, e.Upstream, err)
			}
		}
	}
}
