package edge

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluicegw/sluice/bench/stub"
	"github.com/sluicegw/sluice/internal/testutil"
)

// corsConfig: the top-level policy (exact and wildcard origins,
// credentials) and routes that change it.
func corsConfig(t *testing.T, upstream string) string {
	keys := filepath.Join(t.TempDir(), "keys.json")
	return `
auth: { api_keys: { file: ` + keys + ` } }
cors:
  allow_origins: [https://app.example, "https://*.example.org", "http://127.0.0.1:5173"]
  allow_methods: [GET, POST, PUT, DELETE]
  allow_headers: [Content-Type, X-Client]
  expose_headers: [X-Request-Id, X-Served-By]
  allow_credentials: true
  max_age: 10m
  allow_private_network: true
` + oneUpstream(upstream, `  - { name: api, match: { prefix: /api/ }, upstream: up, rewrite: { strip_prefix: /api } }
  - { name: strict, match: { prefix: /strict/, methods: [GET, PUT] }, upstream: up }
  - { name: keyed, match: { prefix: /keyed/ }, upstream: up, auth: api_key }
  - { name: open, match: { prefix: /open/ }, upstream: up, rewrite: { strip_prefix: /open },
      cors: { allow_origins: ["*"], allow_methods: ["*"], allow_headers: ["*"], expose_headers: ["*"] } }
  - { name: putonly, match: { prefix: /putonly/ }, upstream: up, cors: { allow_origins: [https://app.example], allow_methods: [PUT] } }
  - { name: plain, match: { prefix: /plain/ }, upstream: up, rewrite: { strip_prefix: /plain }, cors: { enabled: false } }
`)
}

// TestCORS holds sluice to the Fetch standard's CORS protocol
// (https://fetch.spec.whatwg.org/#http-cors-protocol; section numbers as
// of 2026-07): what a preflight is (3.3.2), what the answers carry
// (3.3.3), credentials (3.3.5), what the browser then checks (4.8
// CORS-preflight fetch, 4.10 CORS check), the safelisted methods (2.2.1)
// and "CORS protocol and HTTP caches" (Vary). A header wanted as "" must
// be absent.
func TestCORS(t *testing.T) {
	up := testutil.StartUpstream(t, stub.Options{Name: "a"})
	g := startGateway(t, corsConfig(t, up.URL))

	const app = "https://app.example"
	preflight := func(path, origin, method, headers string) request {
		h := map[string]string{"Origin": origin, "Access-Control-Request-Method": method}
		if headers != "" {
			h["Access-Control-Request-Headers"] = headers
		}
		return request{method: "OPTIONS", path: path, headers: h}
	}
	get := func(path, origin string) request {
		r := request{path: path, headers: map[string]string{}}
		if origin != "" {
			r.headers["Origin"] = origin
		}
		return r
	}
	withPN := func(r request) request { r.headers["Access-Control-Request-Private-Network"] = "true"; return r }
	const varyPre = "Origin, Access-Control-Request-Method, Access-Control-Request-Headers, Access-Control-Request-Private-Network"
	refused := map[string]string{"Access-Control-Allow-Origin": "", "Access-Control-Allow-Credentials": "", "Access-Control-Allow-Methods": "", "Access-Control-Allow-Headers": ""}

	cases := []struct {
		name     string
		req      request
		status   int
		fault    string // the JSON error of a refusal
		want     map[string]string
		upstream bool // the request reached the upstream
	}{
		// Preflights (3.3.2) are answered at the edge: 204 and the
		// Access-Control-Allow-* headers (3.3.3), or 403 without them.
		{"3.3.3 preflight, exact origin", preflight("/api/x", app, "PUT", "content-type,x-client"), 204, "", map[string]string{
			"Access-Control-Allow-Origin": app, "Access-Control-Allow-Credentials": "true", "Access-Control-Allow-Methods": "GET, POST, PUT, DELETE",
			"Access-Control-Allow-Headers": "Content-Type, X-Client", "Access-Control-Max-Age": "600", "Vary": varyPre,
			"Access-Control-Allow-Private-Network": "", "Access-Control-Expose-Headers": ""}, false},
		{"3.3.3 preflight, wildcard subdomain of several labels", preflight("/api/x", "https://a.b.example.org", "DELETE", ""), 204, "",
			map[string]string{"Access-Control-Allow-Origin": "https://a.b.example.org"}, false},
		{"3.3.3 preflight, origin with its port", preflight("/api/x", "http://127.0.0.1:5173", "PUT", ""), 204, "",
			map[string]string{"Access-Control-Allow-Origin": "http://127.0.0.1:5173"}, false},
		{"3.3.3 refused: a wildcard does not cover the domain itself", preflight("/api/x", "https://example.org", "PUT", ""), 403, "origin not allowed by cors policy", refused, false},
		{"3.3.3 refused: a wildcard keeps its scheme", preflight("/api/x", "http://a.example.org", "PUT", ""), 403, "origin not allowed by cors policy", refused, false},
		{"3.3.3 refused: a wildcard matches whole labels", preflight("/api/x", "https://evilexample.org", "PUT", ""), 403, "origin not allowed by cors policy", refused, false},
		{"3.3.3 refused: the allowed domain as a subdomain of another", preflight("/api/x", "https://a.example.org.evil.net", "PUT", ""), 403, "origin not allowed by cors policy", refused, false},
		{"3.3.3 refused: another port is another origin", preflight("/api/x", "https://a.example.org:8443", "PUT", ""), 403, "origin not allowed by cors policy", refused, false},
		{"3.3.3 refused: an exact origin is not a prefix", preflight("/api/x", "https://app.example.evil.net", "PUT", ""), 403, "origin not allowed by cors policy", refused, false},
		{"3.3.3 refused: a wildcard's labels can't be empty", preflight("/api/x", "https://x..example.org", "PUT", ""), 403, "origin not allowed by cors policy", refused, false},
		{"3.3.3 refused: null (sandboxed documents)", preflight("/api/x", "null", "PUT", ""), 403, "origin not allowed by cors policy", refused, false},
		{"3.3.3 refused: an origin longer than any host name", preflight("/api/x", "https://"+strings.Repeat("a", 330)+".example.org", "PUT", ""), 403, "origin not allowed by cors policy", refused, false},
		{"3.3.3 refused: a method the policy doesn't list", preflight("/api/x", app, "PATCH", ""), 403, "method not allowed by cors policy", refused, false},
		{"3.3.3 refused: a header the policy doesn't list", preflight("/api/x", app, "PUT", "content-type,x-other"), 403, "request headers not allowed by cors policy", refused, false},
		{"3.3.3 a refusal still varies on the request", preflight("/api/x", "https://evil.example", "PUT", ""), 403, "origin not allowed by cors policy", map[string]string{"Vary": varyPre}, false},
		{"4.8 header names compare without case", preflight("/api/x", app, "PUT", "X-CLIENT, Content-Type"), 204, "", map[string]string{"Access-Control-Allow-Origin": app}, false},
		{"2.2.1/4.8 a safelisted method needs no listing", preflight("/putonly/x", app, "POST", ""), 204, "",
			map[string]string{"Access-Control-Allow-Methods": "PUT", "Access-Control-Allow-Credentials": ""}, false},
		{"3.3.2 a preflight goes to the route of the method it asks about", preflight("/strict/x", app, "PUT", ""), 204, "", map[string]string{"Access-Control-Allow-Origin": app}, false},
		{"3.3.2 ... and no route takes DELETE there", preflight("/strict/x", app, "DELETE", ""), 405, "method not allowed", map[string]string{"Access-Control-Allow-Origin": ""}, false},
		{"3.3.2 preflights carry no credentials: answered before auth", preflight("/keyed/x", app, "GET", "x-client"), 204, "", map[string]string{"Access-Control-Allow-Origin": app}, false},
		{"Private Network Access: the opt-in answered", withPN(preflight("/api/x", app, "PUT", "")), 204, "", map[string]string{"Access-Control-Allow-Private-Network": "true"}, false},
		{"Private Network Access: no opt-in, no header (the browser decides)", withPN(preflight("/putonly/x", app, "PUT", "")), 204, "", map[string]string{"Access-Control-Allow-Private-Network": ""}, false},

		// Other CORS requests go upstream; sluice's headers go on the answer.
		{"3.3.2 OPTIONS without Access-Control-Request-Method is not a preflight", request{method: "OPTIONS", path: "/api/x", headers: map[string]string{"Origin": app}}, 200, "", map[string]string{"Access-Control-Allow-Origin": app}, true},
		{"3.3.3/3.3.5 allowed origin, credentials", get("/api/x", app), 200, "", map[string]string{
			"Access-Control-Allow-Origin": app, "Access-Control-Allow-Credentials": "true", "Access-Control-Expose-Headers": "X-Request-Id, X-Served-By",
			"Vary": "Origin", "Access-Control-Allow-Methods": "", "Access-Control-Max-Age": ""}, true},
		{"3.3.5 no credentials allowed: no Allow-Credentials", get("/putonly/x", app), 200, "", map[string]string{
			"Access-Control-Allow-Origin": app, "Access-Control-Allow-Credentials": ""}, true},
		{"3.3.3 refused origin: no CORS headers, still served (the browser withholds it)", get("/api/x", "https://evil.example"), 200, "", map[string]string{
			"Access-Control-Allow-Origin": "", "Access-Control-Allow-Credentials": "", "Access-Control-Expose-Headers": "", "Vary": "Origin"}, true},
		{"caches: Vary: Origin even without Origin", get("/api/x", ""), 200, "", map[string]string{"Access-Control-Allow-Origin": "", "Vary": "Origin"}, true},
		{"3.3.3 the upstream can't widen the policy", get("/api/__stub/respond?h=Access-Control-Allow-Origin:*&h=Access-Control-Allow-Credentials:true&h=Access-Control-Allow-Methods:PATCH&h=Vary:Accept-Encoding", "https://evil.example"), 200, "", map[string]string{
			"Access-Control-Allow-Origin": "", "Access-Control-Allow-Credentials": "", "Access-Control-Allow-Methods": "", "Vary": "Accept-Encoding, Origin"}, true},
		{"3.3.3 the upstream's Allow-Origin replaced, not doubled", get("/api/__stub/respond?h=Access-Control-Allow-Origin:https://other.example&h=Access-Control-Expose-Headers:Set-Cookie", app), 200, "", map[string]string{
			"Access-Control-Allow-Origin": app, "Access-Control-Expose-Headers": "X-Request-Id, X-Served-By"}, true},
		{"caches: an upstream Vary naming Origin is kept as it is", get("/api/__stub/respond?h=Vary:accept,%20origin", app), 200, "", map[string]string{"Vary": "accept, origin"}, true},
		{"caches: Vary: * stays", get("/api/__stub/respond?h=Vary:*", app), 200, "", map[string]string{"Vary": "*"}, true},
		{"caches: two Vary lines become one with Origin", get("/api/__stub/respond?h=Vary:Accept&h=Vary:Accept-Language", app), 200, "", map[string]string{"Vary": "Accept, Accept-Language, Origin"}, true},
		{"3.3.3 a refusal by a later step is readable (401)", get("/keyed/x", app), 401, "missing credentials", map[string]string{
			"Access-Control-Allow-Origin": app, "Access-Control-Allow-Credentials": "true", "Vary": "Origin"}, false},

		// "*" without credentials: static, so always sent and no Vary.
		{"4.10 \"*\" for any origin", get("/open/x", "https://anyone.example"), 200, "", map[string]string{
			"Access-Control-Allow-Origin": "*", "Access-Control-Allow-Credentials": "", "Access-Control-Expose-Headers": "*", "Vary": ""}, true},
		{"caches: \"*\" is sent without Origin too", get("/open/x", ""), 200, "", map[string]string{"Access-Control-Allow-Origin": "*", "Vary": ""}, true},
		{"4.8 \"*\" preflight echoes what was asked (Authorization is never covered by a literal *)", preflight("/open/x", "https://anyone.example", "PATCH", "authorization,x-anything"), 204, "", map[string]string{
			"Access-Control-Allow-Origin": "*", "Access-Control-Allow-Methods": "PATCH", "Access-Control-Allow-Headers": "authorization,x-anything",
			"Vary": "Access-Control-Request-Method, Access-Control-Request-Headers"}, false},

		// A route with enabled: false: sluice stays out of it.
		{"cors off: the preflight goes upstream, its headers pass", preflight("/plain/__stub/respond?h=Access-Control-Allow-Origin:https://x.example", app, "PUT", ""), 200, "", map[string]string{
			"Access-Control-Allow-Origin": "https://x.example", "Vary": ""}, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := up.Requests()
			r := g.do(t, c.req)
			if c.fault != "" {
				wantFault(t, r, c.status, c.fault)
			} else if r.status != c.status {
				t.Fatalf("status %d, want %d: %s", r.status, c.status, r.body)
			}
			for k, v := range c.want {
				got := r.header.Values(k)
				switch {
				case v == "" && len(got) > 0:
					t.Errorf("%s = %q, want none", k, got)
				case v != "" && (len(got) != 1 || got[0] != v):
					t.Errorf("%s = %q, want exactly %q", k, got, v)
				}
			}
			if reached := up.Requests() > before; reached != c.upstream {
				t.Errorf("reached the upstream: %v, want %v", reached, c.upstream)
			}
		})
	}
}

// A reload changes the policy: a refused origin becomes allowed.
func TestCORSReload(t *testing.T) {
	up := testutil.StartUpstream(t, stub.Options{Name: "a"})
	cfg := corsConfig(t, up.URL)
	g := startGateway(t, cfg)
	ask := request{method: "OPTIONS", path: "/api/x", headers: map[string]string{"Origin": "https://new.example", "Access-Control-Request-Method": "PUT"}}
	wantFault(t, g.do(t, ask), 403, "origin not allowed by cors policy")
	if err := g.Apply(mustParse(t, replaceOnce(t, cfg, "[https://app.example,", "[https://new.example, https://app.example,"))); err != nil {
		t.Fatal(err)
	}
	if r := g.do(t, ask); r.status != 204 || r.header.Get("Access-Control-Allow-Origin") != "https://new.example" {
		t.Errorf("after the reload: %d %v", r.status, r.header)
	}
}
