package config

import (
	"strings"
	"testing"
)

// Regression: a typo'd field used to hide every other problem (the walker
// returned first), and a type error hid the validation errors. One run
// must list them all, once each, without the errors that only follow
// from another (a typo'd "targets" is not also "no targets").
func TestEveryProblemAtOnce(t *testing.T) {
	src := `listen: ":99999"
admin:
  listen: "127.0.0.1:abc"
  password: x
upstreams:
  u:
    targts: [ { url: "http://127.0.0.1:9001" } ]
  v:
    targets: [ { url: "http://127.0.0.1:9002", weight: 5000 } ]
    max_connections: lots
routes:
  - { name: r, match: { prefix: / }, upstream: u, timout: 1s }
  - { name: s, match: { prefix: /s/ }, upstrem: v }
  - { name: q, match: { prefix: /q/ }, upstream: v, rate_limit: { rate: fast } }
`
	_, err := Parse("b.yaml", []byte(src), nil)
	if err == nil {
		t.Fatal("want errors")
	}
	want := []string{
		`b.yaml:1: listen: ":99999": the port must be a number 0..65535, got "99999"`,
		`b.yaml:3: admin.listen: "127.0.0.1:abc": the port must be a number 0..65535, got "abc"`,
		`b.yaml:7: upstreams.u.targts: unknown field (did you mean "targets"?)`,
		`b.yaml:9: upstreams.v.targets[0].weight: must be 1..1000, got 5000`,
		`b.yaml:10: upstreams.v.max_connections: want an integer, got "lots"`,
		`b.yaml:12: routes[0].timout: unknown field (did you mean "timeout"?)`,
		`b.yaml:13: routes[1].upstrem: unknown field (did you mean "upstream"?)`,
		`b.yaml:14: routes[2].rate_limit.rate: want an integer, got "fast"`,
	}
	if got := strings.Split(err.Error(), "\n"); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got:\n%s\nwant exactly:\n%s", err, strings.Join(want, "\n"))
	}
}

func TestPortsAreChecked(t *testing.T) {
	cases := []struct{ src, want string }{
		{"listen: \":99999\"\n" + minimal, `b.yaml:1: listen: ":99999": the port must be a number 0..65535`},
		{"listen: \"127.0.0.1:abc\"\n" + minimal, `b.yaml:1: listen: "127.0.0.1:abc": the port must be a number 0..65535, got "abc"`},
		{"listen: \":http\"\n" + minimal, `listen: ":http": the port must be a number`},
		{"listen: \":-1\"\n" + minimal, `listen: ":-1": the port must be a number`},
		{"redis: { addrs: [\"127.0.0.1:70000\"] }\n" + minimal, `b.yaml:1: redis.addrs[0]: "127.0.0.1:70000" is not host:port with a port 1..65535`},
		{strings.Replace(minimal, "9001", "65536", 1), `upstreams.users.targets[0].url: "http://127.0.0.1:65536": the port must be 1..65535`},
	}
	for _, c := range cases {
		_, err := Parse("b.yaml", []byte(c.src), nil)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: got %v, want %q", strings.SplitN(c.src, "\n", 2)[0], err, c.want)
		}
	}
	for _, ok := range []string{":0", "127.0.0.1:0", ":65535", "[::1]:8080", "localhost:80"} {
		if _, err := Parse("b.yaml", []byte("listen: \""+ok+"\"\n"+minimal), nil); err != nil {
			t.Errorf("listen %q refused: %v", ok, err)
		}
	}
}

// An error about a field the file does not have points at its nearest
// ancestor that it has, or at the top of the file: never at no line.
func TestErrorsOnAbsentFieldsHaveALine(t *testing.T) {
	noAdmin := "upstreams: { u: { targets: [ { url: \"http://127.0.0.1:9001\" } ] } }\n"
	_, err := Parse("b.yaml", []byte("# a comment\n"+noAdmin), nil)
	if err == nil || !strings.HasPrefix(err.Error(), "b.yaml:1: admin: admin authentication is on and no password is set") {
		t.Errorf("no admin block: %v", err)
	}
	_, err = Parse("b.yaml", []byte(noAdmin+"admin:\n  username: ops\n"), nil)
	if err == nil || !strings.HasPrefix(err.Error(), "b.yaml:2: admin: admin authentication is on") {
		t.Errorf("admin block without password: %v", err)
	}
}

// yaml.v3 names the line before the problem for parser errors (and
// sometimes the start of the enclosing block); sluice names the line to
// fix.
func TestSyntaxErrorLines(t *testing.T) {
	cases := []struct {
		name, src string
		line      string
	}{
		{"item in a mapping", "listen: :80\n- x\n", "b.yaml:2: (syntax): did not find expected key"},
		{"key in a list", "routes:\n  - name: a\n  upstream: u\n", "b.yaml:3: (syntax): did not find expected '-' indicator"},
		{"dedented key", "server:\n  read_timeout: 1s\n write_timeout: 2s\n", "b.yaml:3: (syntax): did not find expected key"},
		{"flow mapping not closed", "listen: :80\nroutes:\n  - name: r\n    match: { prefix: /\n    upstream: u\n", "b.yaml:4: (syntax): did not find expected ',' or '}'"},
		{"flow list not closed at the end", "listen: [\n\n", "b.yaml:1: (syntax): did not find expected node content"},
		{"indented key (scanner)", "listen: :80\nserver: x\n  read_timeout: 1s\n", "b.yaml:3: (syntax): mapping values are not allowed in this context"},
		{"tab (scanner)", "listen: :80\n\tserver: x\n", "b.yaml:2: (syntax): found a tab character"},
		{"first line", "- [\n", "b.yaml:1: (syntax):"},
	}
	for _, c := range cases {
		_, err := Parse("b.yaml", []byte(c.src), nil)
		if err == nil || !strings.HasPrefix(err.Error(), c.line) {
			t.Errorf("%s: got %v, want %q", c.name, err, c.line)
		}
	}
}

// Regression: a key given twice made yaml.v3 leave its whole mapping
// undecoded (at the top, the whole config): the duplicate came out as a
// type error on some other field, beside a missing admin password.
func TestDuplicateKeyIsNamedAlone(t *testing.T) {
	_, err := Parse("b.yaml", []byte(minimal+"upstreams:\n  other: { targets: [ { url: \"http://127.0.0.1:9002\" } ] }\n"), nil)
	if err == nil || err.Error() != `b.yaml:11: upstreams: given twice (first on line 3)` {
		t.Errorf("got %v", err)
	}
}

// Regression: yaml.v3 truncated a float given for an integer field
// without an error: weight 0.5 became 0 and then the default 1,
// max_connections 0.5 the default 10000, rate 2.5 became 2.
func TestFloatForAnIntegerIsRefused(t *testing.T) {
	src := `server: { max_connections: 0.5 }
admin: { password: x }
upstreams:
  users:
    targets:
      - { url: "http://127.0.0.1:9001", weight: 2.5 }
routes:
  - name: users
    match: { prefix: / }
    upstream: users
    rate_limit: { rate: 1e3 }
`
	_, err := Parse("b.yaml", []byte(src), nil)
	want := []string{
		`b.yaml:1: server.max_connections: want an integer, got "0.5"`,
		`b.yaml:6: upstreams.users.targets[0].weight: want an integer, got "2.5"`,
		`b.yaml:11: routes[0].rate_limit.rate: want an integer, got "1e3"`,
	}
	if err == nil || err.Error() != strings.Join(want, "\n") {
		t.Errorf("got:\n%v\nwant:\n%s", err, strings.Join(want, "\n"))
	}
	for _, ok := range []string{"max_connections: 100", "max_connections: 0x10", "max_connections: ${N}"} {
		if _, err := Parse("b.yaml", []byte("server:\n  "+ok+"\n"+minimal), env("N", "7")); err != nil {
			t.Errorf("%s refused: %v", ok, err)
		}
	}
}

// A type error inside a flow mapping names its own field, not the
// longest path on its line (yaml.v3's errors carry only the line).
func TestTypeErrorInFlowStyleNamesItsField(t *testing.T) {
	src := strings.Replace(minimal, "upstream: users", "upstream: users\n    rate_limit: { rate: 10, burst: lots, key: [header:X-Tenant] }", 1) +
		"  - { name: b, match: { prefix: /b/, methods: [GET] }, upstream: users, quota: { limit: many, key: [ip] } }\n"
	_, err := Parse("b.yaml", []byte(src), nil)
	want := `b.yaml:11: routes[0].rate_limit.burst: want an integer, got "lots"
b.yaml:12: routes[1].quota.limit: want an integer, got "many"`
	if err == nil || err.Error() != want {
		t.Errorf("got:\n%v\nwant:\n%s", err, want)
	}
}
