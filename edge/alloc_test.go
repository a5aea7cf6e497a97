//go:build !race

package edge

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluicegw/sluice/lb"
)

// Steady-state proxying allocates nothing: the gateway handler, a proxied
// request end to end (routing, rewrite, forwarded headers, request id, the
// upstream exchange) and the answers it makes itself. Skipped under -race,
// which allocates on its own.
func TestProxyAllocatesNothing(t *testing.T) {
	cases := []struct {
		name   string
		body   int
		path   string
		status int
	}{
		{"proxied, small body", 64, "/api/users/42?page=2", 200},
		{"proxied, 64 KiB body", 64 << 10, "/api/x", 200},
		{"no route", 64, "/nothing/here", 404},
	}
	for _, c := range cases {
		h := newHandlerHarness(t, c.body, c.path)
		for i := 0; i < 10; i++ {
			h.once(t, c.status) // warm pools and buffers
		}
		if n := testing.AllocsPerRun(500, func() { h.once(t, c.status) }); n != 0 {
			t.Errorf("%s: %.1f allocations per request, want 0", c.name, n)
		}
	}
}

// A JWT-authenticated route: after the first request the token comes from
// the verified-token cache, and the whole request still allocates nothing.
func TestAuthenticatedProxyAllocatesNothing(t *testing.T) {
	h := newHandlerHarnessWith(t, 64, "/api/x",
		`auth: { jwt: { keys: [ { id: k1, algorithm: HS256, secret: "`+testSecret+`" } ], issuer: https://idp.test, audience: [api], forward_claims: { sub: X-User-ID } } }`,
		`, auth: jwt, roles: [reader]`)
	h.authz = "Bearer " + hsToken(t, "alice", []string{"reader"}, time.Hour)
	for i := 0; i < 10; i++ {
		h.once(t, 200)
	}
	if n := testing.AllocsPerRun(500, func() { h.once(t, 200) }); n != 0 {
		t.Errorf("%.1f allocations per authenticated request, want 0", n)
	}
}

// A rate-limited route (an existing bucket, headers on the answer).
func TestRateLimitedProxyAllocatesNothing(t *testing.T) {
	h := newHandlerHarnessWith(t, 64, "/api/x", "", `, rate_limit: { rate: 1000000000, per: 1s, key: [ip, route] }`)
	for i := 0; i < 10; i++ {
		h.once(t, 200)
	}
	if n := testing.AllocsPerRun(500, func() { h.once(t, 200) }); n != 0 {
		t.Errorf("%.1f allocations per rate-limited request, want 0", n)
	}
}

// Metrics are on by default in every test above. With the access log on
// (every request logged, to a file) and span export on (requests not
// sampled), a request still allocates nothing: a line is formatted into a
// pooled buffer and handed to the writer goroutine.
func TestObservedProxyAllocatesNothing(t *testing.T) {
	log := filepath.Join(t.TempDir(), "access.log")
	h := newHandlerHarnessWith(t, 64, "/api/x", `
access_log: { enabled: true, output: "`+log+`", sample: 1, buffer: 100000 }
tracing: { otlp_endpoint: "http://127.0.0.1:9", sample: 0 }`, "")
	for i := 0; i < 10; i++ {
		h.once(t, 200)
	}
	if n := testing.AllocsPerRun(500, func() { h.once(t, 200) }); n != 0 {
		t.Errorf("%.1f allocations per logged request, want 0", n)
	}
	h.gw.res.accessLog.Close()
	data, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	if lines := bytes.Count(data, []byte("\n")); lines < 510 {
		t.Errorf("%d lines logged, want at least 510 (none may be dropped)", lines)
	}
}

func TestRouterMatchAllocatesNothing(t *testing.T) {
	r := benchRouter()
	host, path, method := []byte("h3.example.com"), []byte("/exact/7"), []byte("GET")
	if n := testing.AllocsPerRun(1000, func() { _, _ = r.match(host, path, method, nil) }); n != 0 {
		t.Errorf("router match: %.1f allocations, want 0", n)
	}
}

// Every edge policy enabled at once: the top-level ip_filter (10,000
// entries) and strict security headers, and a route's own ip_filter,
// security change and CORS policy. An allowed CORS request whose upstream
// sends its own CORS headers, Vary and Server (all replaced or merged), a
// refused one (the first compressed, since it refuses identity),
// preflights answered at the edge (204 and 403) and a 404
// before routing still allocate nothing.
func TestPolicyStepsAllocateNothing(t *testing.T) {
	var deny strings.Builder
	for i := 0; i < 10000; i++ {
		fmt.Fprintf(&deny, "100.%d.%d.0/24, ", 64+i/256, i%256)
	}
	extra := `
ip_filter: { allow: [127.0.0.0/8, "::1"], deny: [` + deny.String() + `"2001:db8::/32"] }
security_headers: { preset: strict }
cors: { allow_origins: [https://app.example, "https://*.example.org"], allow_methods: [GET, PUT], allow_headers: [Content-Type, X-Client],
        expose_headers: [X-Request-Id], allow_credentials: true, max_age: 10m, allow_private_network: true }
compression: { min_size: 1 }
`
	route := `, ip_filter: { allow: [127.0.0.1] }, security_headers: { frame_options: SAMEORIGIN, remove: [Server, X-Powered-By] }`
	const respond = "/api/__stub/respond?h=Vary:Accept-Encoding&h=Access-Control-Allow-Origin:*&h=Server:x&h=X-Powered-By:y"
	preflight := "Access-Control-Request-Method: PUT\r\nAccess-Control-Request-Headers: content-type,x-client\r\nAccess-Control-Request-Private-Network: true\r\n"
	cases := []struct {
		name, method, path, headers string
		status                      int
	}{
		{"allowed origin", "GET", respond, "Origin: https://a.b.example.org\r\nAccept-Encoding: br, identity;q=0\r\n", 200},
		{"refused origin", "GET", respond, "Origin: https://evil.example\r\n", 200},
		{"no origin", "GET", "/api/x", "", 200},
		{"preflight", "OPTIONS", "/api/x", "Origin: https://app.example\r\n" + preflight, 204},
		{"refused preflight", "OPTIONS", "/api/x", "Origin: https://evil.example\r\n" + preflight, 403},
		{"no route", "GET", "/nothing", "Origin: https://app.example\r\n", 404},
	}
	for _, c := range cases {
		h := newHandlerHarnessWith(t, 64, c.path, extra, route)
		h.method, h.extra = c.method, c.headers
		for i := 0; i < 10; i++ {
			h.once(t, c.status)
		}
		if n := testing.AllocsPerRun(500, func() { h.once(t, c.status) }); n != 0 {
			t.Errorf("%s: %.1f allocations per request, want 0", c.name, n)
		}
	}
}

// Compression on: a 4 KiB answer compressed with each algorithm by a
// pooled encoder into a pooled buffer, and an answer left alone (no
// Accept-Encoding), allocate nothing once the pools are warm.
func TestCompressionAllocatesNothing(t *testing.T) {
	for _, c := range []struct{ name, accept string }{
		{"gzip", "gzip"}, {"br", "br"}, {"zstd", "zstd"}, {"not accepted", ""},
	} {
		h := newHandlerHarnessWith(t, 4<<10, "/api/x", `
compression: { types: [application/octet-stream], min_size: 1KiB }`, "")
		if c.accept != "" {
			h.extra = "Accept-Encoding: " + c.accept + "\r\n"
		}
		for i := 0; i < 10; i++ {
			h.once(t, 200)
		}
		if ce := string(h.ctx.Response.Header.ContentEncoding()); ce != c.accept {
			t.Fatalf("%s: Content-Encoding %q", c.name, ce)
		}
		if n := testing.AllocsPerRun(500, func() { h.once(t, 200) }); n != 0 {
			t.Errorf("%s: %.1f allocations per request, want 0", c.name, n)
		}
	}
}

// A route chosen by a header, a percent-encoded query parameter and a
// cookie (each checked on every request, after two routes on the same
// prefix whose conditions fail) allocates nothing either.
func TestConditionalRouteAllocatesNothing(t *testing.T) {
	h := newHandlerHarnessWith(t, 64, "/api/c/x?a=1&b%65ta=%31", "", ` }
  - { name: no1, match: { prefix: /api/c/, headers: { X-Env: prod } }, upstream: up }
  - { name: no2, match: { prefix: /api/c/, query: { beta: "~^[02-9]$" } }, upstream: up }
  - { name: cond, match: { prefix: /api/c/, headers: { x-env: canary }, query: { beta: "1" }, cookies: { tier: "~^g" } }, upstream: up,
      rewrite: { strip_prefix: /api/c }, response_headers: { set: { X-Route: cond } }`)
	h.extra = "X-Env: canary\r\nCookie: a=b; tier=gold\r\n"
	for i := 0; i < 10; i++ {
		h.once(t, 200)
	}
	if got := string(h.ctx.Response.Header.Peek("X-Route")); got != "cond" {
		t.Fatalf("not the conditional route: X-Route %q", got)
	}
	if n := testing.AllocsPerRun(500, func() { h.once(t, 200) }); n != 0 {
		t.Errorf("%.1f allocations per request, want 0", n)
	}
}

// A split route with an override cookie and a sticky header key (both
// looked up, the key hashed) allocates nothing; so does a random draw.
func TestSplitRouteAllocatesNothing(t *testing.T) {
	for _, extra := range []string{"X-User: alice\r\nCookie: force=nothing\r\n", ""} {
		h := newHandlerHarnessWith(t, 64, "/api/s/x", "", ` }
  - { name: sp, match: { prefix: /api/s/ }, split: [ { upstream: up, weight: 3 } ], split_key: "header:X-User", split_override: "cookie:force",
      response_headers: { set: { X-Route: sp } }`)
		h.extra = extra
		for i := 0; i < 10; i++ {
			h.once(t, 200)
		}
		if got := string(h.ctx.Response.Header.Peek("X-Route")); got != "sp" {
			t.Fatalf("not the split route: X-Route %q", got)
		}
		if n := testing.AllocsPerRun(500, func() { h.once(t, 200) }); n != 0 {
			t.Errorf("%q: %.1f allocations per request, want 0", extra, n)
		}
	}
}

// A mirrored route's requests that are not sampled allocate nothing (a
// copy that is sent costs the request copy's pool and a goroutine).
func TestMirrorNotSampledAllocatesNothing(t *testing.T) {
	h := newHandlerHarnessWith(t, 64, "/api/x", "", `, mirror: { upstream: up, sample: 0 }`)
	for i := 0; i < 10; i++ {
		h.once(t, 200)
	}
	if n := testing.AllocsPerRun(500, func() { h.once(t, 200) }); n != 0 {
		t.Errorf("%.1f allocations per request, want 0", n)
	}
}

// The sticky choice itself (weighted rendezvous over four upstreams)
// allocates nothing.
func TestSplitStickyPickAllocatesNothing(t *testing.T) {
	sp := testSplit("a", 70, "b", 20, "c", 9, "d", 1)
	key := lb.HashBytes([]byte("user-42"))
	if n := testing.AllocsPerRun(1000, func() { _ = sp.sticky(key) }); n != 0 {
		t.Errorf("%.1f allocations per pick, want 0", n)
	}
}

// A regex route that fills replace_path from its groups allocates nothing:
// the groups are found into the exchange's scratch (edge/submatch), not by
// regexp's FindSubmatchIndex, which allocates its result.
func TestRegexRewriteAllocatesNothing(t *testing.T) {
	const route = ` }
  - { name: rx, match: { regex: "^/users/(?P<id>[0-9]+)(?P<rest>/.*)?$" }, upstream: up,
      rewrite: { replace_path: "/u/{id}/profile{rest}" }`
	// The stub's default answer names the URI it got (building that
	// answer allocates in the stub, in this process: the allocations are
	// counted on a stub answering fixed bytes instead).
	seen := newHandlerHarnessWith(t, 0, "/users/123456/posts/7?x=1", "", route)
	seen.once(t, 200)
	if body := string(seen.ctx.Response.Body()); !strings.Contains(body, `"uri":"/u/123456/profile/posts/7?x=1"`) {
		t.Fatalf("the upstream got: %s", body)
	}
	h := newHandlerHarnessWith(t, 64, "/users/123456/posts/7?x=1", "", route)
	for i := 0; i < 10; i++ {
		h.once(t, 200)
	}
	if n := testing.AllocsPerRun(500, func() { h.once(t, 200) }); n != 0 {
		t.Errorf("%.1f allocations per request, want 0", n)
	}
}

// With ACME on (a listener with acme_hosts, HTTP-01 checked before
// routing), a proxied GET still allocates nothing: the challenge check
// is a prefix test.
func TestACMEGatewayProxyAllocatesNothing(t *testing.T) {
	h := newHandlerHarnessWith(t, 64, "/api/x",
		"listen_tls: [ { listen: 127.0.0.1:8443, acme_hosts: [a.example.com] } ]\nacme: { agree_terms: true, challenges: [tls-alpn-01], ca: \"https://127.0.0.1:1/dir\", storage: { dir: "+t.TempDir()+" } }", "")
	for i := 0; i < 10; i++ {
		h.once(t, 200)
	}
	if n := testing.AllocsPerRun(500, func() { h.once(t, 200) }); n != 0 {
		t.Errorf("%.1f allocations per request with ACME on, want 0", n)
	}
}

// A request carrying the admin console's cookie: removing it from the
// forwarded Cookie header allocates nothing either.
func TestConsoleCookieDropAllocatesNothing(t *testing.T) {
	h := newHandlerHarness(t, 64, "/api/x")
	h.extra = "Cookie: a=1; sluice_session=0123456789abcdef; b=2\r\n"
	for i := 0; i < 10; i++ {
		h.once(t, 200)
	}
	if n := testing.AllocsPerRun(500, func() { h.once(t, 200) }); n != 0 {
		t.Errorf("%.1f allocations per request with a console cookie, want 0", n)
	}
}
