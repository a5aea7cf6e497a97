package config

import (
	"strings"
	"testing"
)

// Match errors name file:line and field: a bad regex (path or condition),
// a replace_path group the regex lacks, strip_prefix on a regex route, and
// routes an earlier route always takes (the router's precedence, README
// "Routing"): same path, methods covered, no condition the earlier lacks.
func TestMatchConfigErrors(t *testing.T) {
	src := `admin: { listen: "off" }
upstreams:
  u: { targets: [ { url: "http://127.0.0.1:9001" } ] }
routes:
  - { name: a, match: { regex: "^/users/(?P<id>[0-9]+$" }, upstream: u }
  - { name: b, match: { regex: "^/u/(?P<id>[0-9]+)$" }, upstream: u, rewrite: { replace_path: "/x/{uid}" } }
  - { name: c, match: { regex: "^/c/", prefix: /c/ }, upstream: u }
  - { name: d, match: { regex: "^/d/" }, upstream: u, rewrite: { strip_prefix: /d } }
  - { name: e, match: { prefix: /e/, headers: { X-Env: "~[" } }, upstream: u }
  - { name: f, match: { prefix: /f/ }, upstream: u }
  - { name: g, match: { prefix: /f/, methods: [GET] }, upstream: u }
  - { name: h, match: { prefix: /h/, headers: { X-Env: canary } }, upstream: u }
  - { name: i, match: { prefix: /h/, headers: { x-env: canary }, query: { v: "2" }, methods: [POST] }, upstream: u }
  - { name: j, match: { prefix: /h/, headers: { X-Env: prod } }, upstream: u }
  - { name: k, match: { prefix: /k/, methods: [GET] }, upstream: u }
  - { name: l, match: { prefix: /k/, methods: [HEAD] }, upstream: u }
`
	_, err := Parse("m.yaml", []byte(src), nil)
	want := []string{
		"m.yaml:5: routes[0].match.regex: error parsing regexp: missing closing ): `^/users/(?P<id>[0-9]+$`",
		`m.yaml:6: routes[1].rewrite.replace_path: {uid}: match.regex has no group named "uid" (write (?P<uid>...))`,
		`m.yaml:7: routes[2].match: prefix, path and regex exclude each other`,
		`m.yaml:8: routes[3].rewrite.strip_prefix: does not go with match.regex: use replace_path with the regex's named groups`,
		"m.yaml:9: routes[4].match.headers.X-Env: error parsing regexp: missing closing ]: `[`",
		`m.yaml:11: routes[6].match: route "g" can never be chosen: route "f" (routes[5]) comes first and takes every request it would (same host and path, methods any, no condition "g" lacks)`,
		`m.yaml:13: routes[8].match: route "i" can never be chosen: route "h" (routes[7]) comes first and takes every request it would (same host and path, methods any, no condition "i" lacks)`,
		`m.yaml:16: routes[11].match: route "l" can never be chosen: route "k" (routes[10]) comes first and takes every request it would (same host and path, methods GET, no condition "l" lacks)`,
	}
	if err == nil || err.Error() != strings.Join(want, "\n") {
		t.Fatalf("got:\n%v\nwant:\n%s", err, strings.Join(want, "\n"))
	}
}
