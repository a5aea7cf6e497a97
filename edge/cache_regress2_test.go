package edge

import (
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
)

// Regression tests for the second review of the response cache: each is
// named for the failure it pins.

// RFC 9111 4.4: a successful unsafe request invalidates the target URI's
// stored responses. On an authorized: true route the caller's entries
// carry its identity hash in the key, so purging the bare key missed
// them: the caller kept reading its own stale profile after a POST.
func TestCacheAuthorizedUnsafeRequestInvalidatesCallersEntry(t *testing.T) {
	var v atomic.Int64
	up := startCacheUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Method == "POST" {
			v.Add(1)
			w.Write([]byte("ok"))
			return
		}
		w.Header().Set("Cache-Control", "max-age=600")
		w.Write([]byte("profile v" + strconv.FormatInt(v.Load(), 10)))
	})
	g := startGateway(t, `
listen: 127.0.0.1:0
admin: { listen: "off" }
auth:
  jwt:
    keys: [ { id: k1, algorithm: HS256, secret: "`+testSecret+`" } ]
    issuer: https://idp.test
    audience: [api]
upstreams:
  up: { targets: [ { url: "`+up.URL+`" } ] }
routes:
  - { name: r, match: { prefix: / }, upstream: up, auth: jwt, cache: { authorized: true } }
`)
	tok := map[string]string{"Authorization": "Bearer " + signHS(t, map[string]any{})}
	if r := g.do(t, request{path: "/profile", headers: tok}); r.body != "profile v0" {
		t.Fatalf("first: %q", r.body)
	}
	if r := g.do(t, request{path: "/profile", headers: tok}); r.body != "profile v0" || !strings.Contains(r.header.Get("Cache-Status"), "hit") {
		t.Fatalf("second: %q %s", r.body, r.header.Get("Cache-Status"))
	}
	if r := g.do(t, request{method: "POST", path: "/profile", headers: tok}); r.status != 200 {
		t.Fatalf("post: %d", r.status)
	}
	if r := g.do(t, request{path: "/profile", headers: tok}); r.body != "profile v1" {
		t.Fatalf("after POST the caller's own entry was not invalidated: got %q (%s)", r.body, r.header.Get("Cache-Status"))
	}
}
