package edge

import (
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluicegw/sluice/bench/stub"
	"github.com/sluicegw/sluice/edge/config"
	"github.com/sluicegw/sluice/internal/testutil"
)

// strictHeaders are the strict preset's headers as a client sees them.
var strictHeaders = map[string]string{
	"X-Content-Type-Options":       "nosniff",
	"X-Frame-Options":              "DENY",
	"Referrer-Policy":              "no-referrer",
	"Content-Security-Policy":      "default-src 'none'; frame-ancestors 'none'",
	"Permissions-Policy":           config.SecurityPresets["strict"].PermissionsPolicy,
	"Cross-Origin-Opener-Policy":   "same-origin",
	"Cross-Origin-Resource-Policy": "same-origin",
	"Cross-Origin-Embedder-Policy": "require-corp",
}

func wantHeaders(t *testing.T, what string, h http.Header, want map[string]string) {
	t.Helper()
	for k, v := range want {
		if got := h.Values(k); len(got) != 1 || got[0] != v {
			t.Errorf("%s: %s = %q, want exactly %q", what, k, got, v)
		}
	}
}

// The strict preset on every answer: the upstream's, sluice's own
// refusals before and after routing; the upstream's Server and
// X-Powered-By removed and its own copies of the headers replaced (all of
// them, when it sent one twice); no HSTS on plain HTTP (RFC 6797 7.2); a
// route's changes; and a reload.
func TestSecurityHeaders(t *testing.T) {
	up := testutil.StartUpstream(t, stub.Options{Name: "a"}) // answers with "Server: stub"
	keys := filepath.Join(t.TempDir(), "keys.json")
	cfg := `
security_headers: { preset: strict }
auth: { api_keys: { file: ` + keys + ` } }
` + oneUpstream(up.URL, `  - { name: api, match: { prefix: /api/, methods: [GET] }, upstream: up, rewrite: { strip_prefix: /api } }
  - { name: app, match: { prefix: /app/ }, upstream: up, rewrite: { strip_prefix: /app }, security_headers: { preset: basic, frame_options: "off", remove: [X-Internal] } }
  - { name: keyed, match: { prefix: /keyed/ }, upstream: up, auth: api_key }
`)
	g := startGateway(t, cfg)

	r := g.get(t, "/api/__stub/respond?h=X-Powered-By:PHP/8.3&h=X-Frame-Options:ALLOWALL&h=X-Frame-Options:ALLOWALL&h=Content-Security-Policy:default-src%20*&h=X-Internal:1")
	if r.status != 200 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	wantHeaders(t, "upstream answer", r.header, strictHeaders)
	for _, k := range []string{"Server", "X-Powered-By", "Strict-Transport-Security"} {
		if v := r.header.Values(k); len(v) > 0 {
			t.Errorf("%s: %q, want none", k, v)
		}
	}
	if r.header.Get("X-Internal") != "1" {
		t.Error("a header the route's remove list does not name was removed")
	}

	// sluice's own answers: 404 and 405 before routing, 401 from a step.
	for _, c := range []struct {
		method, path string
		status       int
	}{{"GET", "/nothing", 404}, {"POST", "/api/x", 405}, {"GET", "/keyed/x", 401}} {
		r := g.do(t, request{method: c.method, path: c.path})
		if r.status != c.status {
			t.Fatalf("%s %s: %d, want %d", c.method, c.path, r.status, c.status)
		}
		wantHeaders(t, c.path, r.header, strictHeaders)
	}

	// The route's own: basic, frame_options off (the upstream's passes),
	// its own remove list.
	r = g.get(t, "/app/__stub/respond?h=X-Frame-Options:SAMEORIGIN&h=X-Internal:1&h=X-Powered-By:PHP")
	wantHeaders(t, "route with basic", r.header, map[string]string{
		"X-Content-Type-Options": "nosniff", "Referrer-Policy": "strict-origin-when-cross-origin", "X-Frame-Options": "SAMEORIGIN", "X-Powered-By": "PHP", "Server": "stub"})
	for _, k := range []string{"Content-Security-Policy", "Cross-Origin-Opener-Policy", "X-Internal"} {
		if v := r.header.Get(k); v != "" {
			t.Errorf("route with basic: %s = %q, want none", k, v)
		}
	}

	// A reload to preset none: nothing set or removed any more.
	if err := g.Apply(mustParse(t, replaceOnce(t, cfg, "preset: strict", "preset: none"))); err != nil {
		t.Fatal(err)
	}
	r = g.get(t, "/api/x")
	if r.header.Get("X-Content-Type-Options") != "" || r.header.Get("Server") != "stub" {
		t.Errorf("after a reload to none: %v", r.header)
	}
}

// A config without security_headers (every config written before them)
// gets no new header and loses none.
func TestNoSecurityHeadersWithoutTheBlock(t *testing.T) {
	up := testutil.StartUpstream(t, stub.Options{Name: "a"})
	g := startGateway(t, oneUpstream(up.URL, catchAll))
	r := g.get(t, "/__stub/respond?h=X-Powered-By:PHP")
	if r.header.Get("Server") != "stub" || r.header.Get("X-Powered-By") != "PHP" {
		t.Errorf("upstream headers were removed: %v", r.header)
	}
	for k := range strictHeaders {
		if v := r.header.Get(k); v != "" {
			t.Errorf("%s = %q added without a security_headers block", k, v)
		}
	}
	if g.get(t, "/__stub/status?code=404").header.Get("X-Frame-Options") != "" {
		t.Error("header added to an upstream 404")
	}
}

// HSTS only on TLS connections (RFC 6797 7.2). sluice has no TLS listener
// yet, so the TLS case is a handler-level request on a connection that
// fasthttp takes for TLS.
func TestHSTSOnlyOverTLS(t *testing.T) {
	h := newHandlerHarnessWith(t, 64, "/api/x", "security_headers: { preset: strict, hsts: \"max-age=31536000; includeSubDomains; preload\" }", "")
	h.once(t, 200)
	if v := h.ctx.Response.Header.Peek("Strict-Transport-Security"); v != nil {
		t.Errorf("HSTS on plain HTTP: %q", v)
	}
	h.tls = true
	h.once(t, 200)
	if v := string(h.ctx.Response.Header.Peek("Strict-Transport-Security")); v != "max-age=31536000; includeSubDomains; preload" {
		t.Errorf("HSTS over TLS: %q", v)
	}
	h.path, h.raw = "/nothing", nil
	h.once(t, 404)
	if v := string(h.ctx.Response.Header.Peek("Strict-Transport-Security")); v == "" {
		t.Error("no HSTS on a 404 over TLS")
	}
}

func replaceOnce(t *testing.T, s, old, new string) string {
	t.Helper()
	if !strings.Contains(s, old) {
		t.Fatalf("%q not found", old)
	}
	return strings.Replace(s, old, new, 1)
}
