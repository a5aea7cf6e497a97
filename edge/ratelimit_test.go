package edge

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluicegw/sluice/bench/stub"
	"github.com/sluicegw/sluice/edge/auth"
	"github.com/sluicegw/sluice/internal/testutil"
)

func TestRateLimitsOnRoutes(t *testing.T) {
	up := testutil.StartUpstream(t, stub.Options{Name: "a"})
	keys := filepath.Join(t.TempDir(), "keys.json")
	g := startGateway(t, fmt.Sprintf(`
listen: 127.0.0.1:0
admin: { listen: "off" }
limits: { default: { rate: 1000, per: 1s } }
auth:
  jwt: { keys: [ { id: k1, algorithm: HS256, secret: "%s" } ], issuer: https://idp.test, audience: [api] }
  api_keys: { file: %q }
upstreams: { up: { targets: [ { url: %q } ] } }
routes:
  - { name: ip, match: { prefix: /ip/ }, upstream: up, rate_limit: { rate: 3, per: 1h } }
  - { name: tenant, match: { prefix: /tenant/ }, upstream: up, rate_limit: { rate: 2, per: 1h, key: "header:X-Tenant" } }
  - { name: keyed, match: { prefix: /keyed/ }, upstream: up, auth: api_key, rate_limit: { rate: 5, per: 1h, key: api_key } }
  - { name: claim, match: { prefix: /claim/ }, upstream: up, auth: jwt, rate_limit: { rate: 1, per: 1h, key: [route, "claim:org"] } }
  - { name: shadow, match: { prefix: /shadow/ }, upstream: up, rate_limit: { rate: 1, per: 1h, shadow: true } }
  - { name: dflt, match: { prefix: /default/ }, upstream: up }
`, testSecret, keys, up.URL))

	for i := 0; i < 3; i++ {
		r := g.get(t, "/ip/x")
		if r.status != 200 || r.header.Get("X-RateLimit-Limit") != "3" || r.header.Get("X-RateLimit-Remaining") != strconv.Itoa(2-i) {
			t.Fatalf("request %d: %d %v", i, r.status, r.header)
		}
		if r.header.Get("RateLimit-Policy") != `"ip";q=3;w=3600` || !strings.HasPrefix(r.header.Get("RateLimit"), `"ip";r=`+strconv.Itoa(2-i)+";t=") {
			t.Errorf("IETF headers: %q %q", r.header.Get("RateLimit-Policy"), r.header.Get("RateLimit"))
		}
		reset, _ := strconv.ParseInt(r.header.Get("X-RateLimit-Reset"), 10, 64)
		if reset < time.Now().Unix() || reset > time.Now().Add(3*time.Hour+time.Minute).Unix() {
			t.Errorf("X-RateLimit-Reset %d is not a unix time within the window", reset)
		}
	}
	seen := up.Requests()
	r := g.get(t, "/ip/x")
	wantFault(t, r, 429, "rate limit exceeded")
	if ra, _ := strconv.Atoi(r.header.Get("Retry-After")); ra < 1100 || ra > 1200 {
		t.Errorf("Retry-After %q, want about 1200s (a token every 20 minutes)", r.header.Get("Retry-After"))
	}
	if r.header.Get("X-RateLimit-Remaining") != "0" || up.Requests() != seen {
		t.Error("a refused request reached the upstream, or headers are missing")
	}

	// Separate buckets per header value.
	for _, tenant := range []string{"acme", "acme", "globex", "globex"} {
		if r := g.do(t, request{path: "/tenant/x", headers: map[string]string{"X-Tenant": tenant}}); r.status != 200 {
			t.Fatalf("tenant %s: %d", tenant, r.status)
		}
	}
	if r := g.do(t, request{path: "/tenant/x", headers: map[string]string{"X-Tenant": "acme"}}); r.status != 429 {
		t.Errorf("third acme request: %d", r.status)
	}

	// An API key's own rate_limit replaces the route's.
	_, slow, _ := g.KeyStore().Create(context.Background(), auth.KeySpec{Name: "slow", RateLimit: 1})
	_, normal, _ := g.KeyStore().Create(context.Background(), auth.KeySpec{Name: "normal"})
	hdr := func(k string) map[string]string { return map[string]string{"X-API-Key": k} }
	if r := g.do(t, request{path: "/keyed/x", headers: hdr(slow)}); r.status != 200 || r.header.Get("X-RateLimit-Limit") != "1" {
		t.Fatalf("slow key first request: %d %v", r.status, r.header.Get("X-RateLimit-Limit"))
	}
	if r := g.do(t, request{path: "/keyed/x", headers: hdr(slow)}); r.status != 429 {
		t.Errorf("slow key second request: %d (its own limit is 1/s)", r.status)
	}
	for i := 0; i < 5; i++ {
		if r := g.do(t, request{path: "/keyed/x", headers: hdr(normal)}); r.status != 200 {
			t.Fatalf("normal key request %d: %d", i, r.status)
		}
	}

	// Keyed by a JWT claim: one bucket per org.
	tok := func(org string) map[string]string {
		return map[string]string{"Authorization": "Bearer " + signHS(t, map[string]any{"org": org})}
	}
	if g.do(t, request{path: "/claim/x", headers: tok("o1")}).status != 200 || g.do(t, request{path: "/claim/x", headers: tok("o2")}).status != 200 {
		t.Fatal("first request per org refused")
	}
	if r := g.do(t, request{path: "/claim/x", headers: tok("o1")}); r.status != 429 {
		t.Errorf("second o1 request: %d", r.status)
	}

	// Shadow: nothing refused.
	for i := 0; i < 4; i++ {
		if r := g.get(t, "/shadow/x"); r.status != 200 {
			t.Fatalf("shadow request %d: %d", i, r.status)
		}
	}
	// The global default applies to routes without their own limit.
	if r := g.get(t, "/default/x"); r.header.Get("X-RateLimit-Limit") != "1000" {
		t.Errorf("default limit headers: %v", r.header)
	}
}
