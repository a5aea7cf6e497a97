package edge

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"

	"github.com/sluicegw/sluice/bench/stub"
	"github.com/sluicegw/sluice/edge/submatch"
	"github.com/sluicegw/sluice/internal/testutil"
)

// Routing on headers, query parameters and cookies, and on a path regex
// whose named groups fill the rewritten path; the precedence README
// "Routing" documents (exact path, then regexes in file order, then the
// longest prefix; within a path, the first route whose conditions hold).
func TestMatchConditionsAndRegex(t *testing.T) {
	a := testutil.StartUpstream(t, stub.Options{Name: "a"})
	b := testutil.StartUpstream(t, stub.Options{Name: "b"})
	g := startGateway(t, `
listen: 127.0.0.1:0
admin: { listen: "off" }
upstreams:
  a: { targets: [ { url: "`+a.URL+`" } ] }
  b: { targets: [ { url: "`+b.URL+`" } ] }
routes:
  - { name: canary, match: { prefix: /api/, headers: { X-Env: canary } }, upstream: b }
  - { name: v2, match: { prefix: /api/, headers: { X-Version: "~^v[2-9]$" }, methods: [GET] }, upstream: b }
  - { name: beta, match: { prefix: /api/, query: { beta: "1" } }, upstream: b }
  - { name: gold, match: { prefix: /api/, cookies: { tier: gold } }, upstream: b }
  - { name: keyed, match: { prefix: /api/, headers: { X-Api-Key: "*" }, query: { debug: "*" } }, upstream: b }
  - { name: api, match: { prefix: /api/ }, upstream: a }
  - { name: user, match: { regex: "^/users/(?P<id>[0-9]+)(?P<rest>/.*)?$" }, upstream: b, rewrite: { replace_path: "/u/{id}/profile{rest}" } }
  - { name: users-exact, match: { path: /users/0 }, upstream: a }
  - { name: users, match: { prefix: /users/ }, upstream: a }
  - { name: put-only, match: { prefix: /put/, headers: { X-Env: canary }, methods: [PUT] }, upstream: b }
`)
	cases := []struct {
		name, method, path string
		headers            map[string]string
		upstream, uri      string
		status             int
	}{
		{"no condition", "GET", "/api/x", nil, "a", "/api/x", 200},
		{"header exact", "GET", "/api/x", map[string]string{"X-Env": "canary"}, "b", "/api/x", 200},
		{"header name in other case", "GET", "/api/x", map[string]string{"x-env": "canary"}, "b", "/api/x", 200},
		{"header value differs", "GET", "/api/x", map[string]string{"X-Env": "Canary"}, "a", "/api/x", 200},
		{"header regex", "GET", "/api/x", map[string]string{"X-Version": "v3"}, "b", "/api/x", 200},
		{"header regex fails", "GET", "/api/x", map[string]string{"X-Version": "v10"}, "a", "/api/x", 200},
		{"header regex, method not allowed: next route", "POST", "/api/x", map[string]string{"X-Version": "v3"}, "a", "/api/x", 200},
		{"query exact", "GET", "/api/x?beta=1", nil, "b", "/api/x?beta=1", 200},
		{"query percent-encoded", "GET", "/api/x?a=2&b%65ta=%31", nil, "b", "/api/x?a=2&b%65ta=%31", 200},
		{"query value differs", "GET", "/api/x?beta=10", nil, "a", "/api/x?beta=10", 200},
		{"cookie", "GET", "/api/x", map[string]string{"Cookie": "a=1; tier=gold"}, "b", "/api/x", 200},
		{"cookie differs", "GET", "/api/x", map[string]string{"Cookie": "tier=silver"}, "a", "/api/x", 200},
		{"present, both needed", "GET", "/api/x?debug", map[string]string{"X-Api-Key": "k"}, "b", "/api/x?debug", 200},
		{"present, one missing", "GET", "/api/x?debug", nil, "a", "/api/x?debug", 200},
		{"regex with groups", "GET", "/users/42", nil, "b", "/u/42/profile", 200},
		{"regex, optional group and query", "GET", "/users/42/posts?page=2", nil, "b", "/u/42/profile/posts?page=2", 200},
		{"exact path beats regex", "GET", "/users/0", nil, "a", "/users/0", 200},
		{"regex fails: prefix", "GET", "/users/abc", nil, "a", "/users/abc", 200},
		{"conditions hold, method not: 405", "GET", "/put/x", map[string]string{"X-Env": "canary"}, "", "", 405},
		{"conditions fail: 404", "GET", "/put/x", nil, "", "", 404},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := g.do(t, request{method: c.method, path: c.path, headers: c.headers})
			if c.status != 200 {
				if r.status != c.status {
					t.Fatalf("status %d, want %d", r.status, c.status)
				}
				if c.status == 405 && r.header.Get("Allow") != "PUT" {
					t.Errorf("Allow %q", r.header.Get("Allow"))
				}
				return
			}
			var got struct{ Upstream, URI string }
			if r.status != 200 || json.Unmarshal([]byte(r.body), &got) != nil {
				t.Fatalf("%d %s", r.status, r.body)
			}
			if got.Upstream != c.upstream || got.URI != c.uri {
				t.Errorf("went to %s as %s, want %s as %s", got.Upstream, got.URI, c.upstream, c.uri)
			}
		})
	}
}

// A replace_path template's groups are the ones regexp finds, also for a
// path too long for submatch's bounded bitmap (then regexp itself finds
// them), and with one scratch reused across paths of different lengths.
func TestTemplatePathGroups(t *testing.T) {
	re := regexp.MustCompile(`^/(?P<a>[a-z]+)/(?P<b>[0-9]*)(?P<c>/.*)?$`)
	captures, err := submatch.Compile(re.String())
	if err != nil {
		t.Fatal(err)
	}
	rt := &route{regex: re, captures: captures, pathTemplate: compilePathTemplate("/x/{b}/{a}{c}", re)}
	long := "/" + strings.Repeat("a", submatch.MaxStates) + "/1/z"
	var sc submatch.Scratch
	for _, c := range []struct{ path, want string }{
		{"/users/42/posts", "/x/42/users/posts"},
		{"/users//", "/x//users/"},
		{"/users/7", "/x/7/users"},
		{long, "/x/1/" + long[1:len(long)-4] + "/z"},
		{"/users/42/posts", "/x/42/users/posts"},
	} {
		if got := string(appendTemplatePath(nil, rt, []byte(c.path), &sc)); got != c.want {
			t.Errorf("%.30s: %.30s, want %.30s", c.path, got, c.want)
		}
	}
}
