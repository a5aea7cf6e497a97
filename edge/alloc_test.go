//go:build !race

package edge

import (
	"testing"
	"time"
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

func TestRouterMatchAllocatesNothing(t *testing.T) {
	r := benchRouter()
	host, path, method := []byte("h3.example.com"), []byte("/exact/7"), []byte("GET")
	if n := testing.AllocsPerRun(1000, func() { _, _ = r.match(host, path, method) }); n != 0 {
		t.Errorf("router match: %.1f allocations, want 0", n)
	}
}
