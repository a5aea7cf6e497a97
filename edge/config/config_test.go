package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluicegw/sluice/edge/pathnorm"
)

const minimal = `
admin: { password: test-secret }
upstreams:
  users:
    targets:
      - url: http://127.0.0.1:9001
routes:
  - name: users
    match: { prefix: /api/users/ }
    upstream: users
`

func env(kv ...string) LookupEnv {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestParseMinimalGetsDefaults(t *testing.T) {
	c, err := Parse("m.yaml", []byte(minimal), nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != ":8080" || c.Admin.Listen != "127.0.0.1:9901" {
		t.Errorf("listen defaults: %q %q", c.Listen, c.Admin.Listen)
	}
	if c.Server.MaxHeaderBytes != 16<<10 || c.Server.MaxBodyBytes != 10<<20 || c.Server.ShutdownTimeout.D() != 15*time.Second ||
		c.Server.BufferBodyBytes != 1<<20 || c.Server.BufferResponseBytes != 64<<10 {
		t.Errorf("server defaults: %+v", c.Server)
	}
	u := c.Upstreams["users"]
	if u.Name != "users" || u.Balancer != "p2c_ewma" || u.Retry.Attempts != 2 || u.Outlier.ConsecutiveFailures != 5 || !*u.PanicMode || u.Circuit != nil || u.Health != nil || u.Targets[0].Weight != 1 || u.MaxConnections != 1024 {
		t.Errorf("upstream defaults: %+v", u)
	}
	r := c.Routes[0]
	if r.HostHeader != "preserve" || r.Timeout.D() != 30*time.Second {
		t.Errorf("route defaults: %+v", r)
	}
	if p := c.Server.Path; !p.Merge() || p.EscapedSlashes != "reject" || r.Path.EscapedSlashes != "reject" {
		t.Errorf("path defaults: %+v, route %+v", p, r.Path)
	}
	if o := c.PathOptions(r); o != (pathnorm.Options{}) {
		t.Errorf("default PathOptions = %+v, want the zero (safe) Options", o)
	}
}

func TestParseFullSchema(t *testing.T) {
	src := `
listen: "127.0.0.1:${PORT:-8081}"
server:
  read_timeout: 5s
  max_header_bytes: 32KiB
  max_body_bytes: 200MiB
  buffer_response_bytes: 128KiB
  trusted_proxies: [10.0.0.0/8, 127.0.0.1]
admin: { listen: "127.0.0.1:9999", password: "${PW:-x}" }
upstreams:
  api:
    balancer: weighted
    max_connections: ${CONNS}
    targets:
      - { url: "http://127.0.0.1:9001", weight: 3 }
      - { url: "http://127.0.0.1:9002" }
routes:
  - name: v1
    match: { prefix: /v1/, methods: [GET, POST], host: "*.example.com" }
    upstream: api
    rewrite: { strip_prefix: /v1, add_prefix: /internal }
    request_headers: { set: { X-Env: "${ENVNAME}" }, remove: [Cookie] }
    response_headers: { set: { X-Served-By: sluice } }
    timeout: 2s
    host_header: target
`
	c, err := Parse("f.yaml", []byte(src), env("CONNS", "64", "ENVNAME", "prod"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != "127.0.0.1:8081" {
		t.Errorf("listen = %q", c.Listen)
	}
	if c.Server.MaxBodyBytes != 200<<20 || c.Server.MaxHeaderBytes != 32<<10 || c.Server.BufferResponseBytes != 128<<10 {
		t.Errorf("sizes: %+v", c.Server)
	}
	if c.Upstreams["api"].MaxConnections != 64 {
		t.Errorf("env int expansion: %d", c.Upstreams["api"].MaxConnections)
	}
	if c.Routes[0].RequestHeaders.Set["X-Env"] != "prod" {
		t.Errorf("env string expansion: %v", c.Routes[0].RequestHeaders.Set)
	}
	if c.Routes[0].Timeout.D() != 2*time.Second || c.Routes[0].Match.Host != "*.example.com" {
		t.Errorf("route: %+v", c.Routes[0])
	}
}

// Each bad config must name the file, the line and the field.
func TestParseErrorsNameLineAndField(t *testing.T) {
	cases := []struct {
		name string
		src  string
		want []string // substrings of the error, each "line: field: msg"-ish
	}{
		{"unknown top field", "listne: :80\n" + minimal, []string{`b.yaml:1: listne: unknown field (did you mean "listen"?)`}},
		{"unknown nested field", strings.Replace(minimal, "upstream: users", "upstream: users\n    timout: 1s", 1),
			[]string{`b.yaml:11: routes[0].timout: unknown field (did you mean "timeout"?)`}},
		{"bad duration", "server: { read_timeout: 5 }\n" + minimal, []string{`b.yaml:1: server.read_timeout: "5" is not a duration`}},
		{"bad size", "server:\n  max_body_bytes: lots\n" + minimal, []string{`b.yaml:2: server.max_body_bytes: "lots": not a size`}},
		{"wrong type", "server:\n  max_connections: many\n" + minimal, []string{`b.yaml:2: server.max_connections: want an integer, got "many"`}},
		{"unset env", "listen: ${NOPE}\n" + minimal, []string{`b.yaml:1: listen: environment variable NOPE is not set`}},
		{"syntax", "listen: [\n", []string{`b.yaml:1: (syntax):`}},
		{"empty", "\n", []string{`b.yaml:1: (file): config is empty`}},
		{"unknown upstream", strings.Replace(minimal, "upstream: users", "upstream: nobody", 1),
			[]string{`b.yaml:10: routes[0].upstream: no upstream named "nobody"`}},
		{"several at once", `
upstreams:
  a:
    balancer: fastest
    targets: [{ url: "ftp://x:1" }]
routes:
  - match: { prefix: nope }
    upstream: a
`, []string{
			`b.yaml:4: upstreams.a.balancer: unknown balancer "fastest"`,
			`b.yaml:5: upstreams.a.targets[0].url: "ftp://x:1": scheme must be http or https`,
			`b.yaml:7: routes[0].name: required`,
			`b.yaml:7: routes[0].match.prefix: must start with '/'`,
		}},
		{"target with path", strings.Replace(minimal, "9001", "9001/api", 1), []string{`upstreams.users.targets[0].url: "http://127.0.0.1:9001/api": a target is scheme://host:port only`}},
		{"duplicate route", minimal + `  - name: users2
    match: { prefix: /api/users/ }
    upstream: users
`, []string{`b.yaml:12: routes[1].match: matches the same requests as routes[0]`}},
		{"strip prefix not a prefix", strings.Replace(minimal, "upstream: users", "upstream: users\n    rewrite: { strip_prefix: /v2 }", 1),
			[]string{`routes[0].rewrite.strip_prefix: "/v2" is not a prefix`}},
		{"hop-by-hop header", strings.Replace(minimal, "upstream: users", "upstream: users\n    request_headers: { set: { Connection: close } }", 1),
			[]string{`routes[0].request_headers.set.Connection: Connection is managed by the proxy`}},
		{"admin equals listen", "listen: 127.0.0.1:9901\n" + minimal, []string{`admin.listen: must differ from listen`}},
		{"list where mapping", "server: [1, 2]\n" + minimal, []string{`b.yaml:1: server: want a mapping of fields, got a list`}},
		{"alias", "x: &a 1\n", []string{`unknown field`}},
		{"resilience settings", strings.Replace(minimal, "    targets:", `    balancer: consistent_hash
    hash_key: "query:x"
    bounded_load: 0.5
    health: { path: healthz, expect_status: "600", jitter: 2 }
    outlier: { max_ejection_percent: 150, base_ejection: 1m, max_ejection: 10s }
    circuit: { failure_ratio: 1.5, half_open_requests: 1, successes: 2 }
    retry: { attempts: 20, on: [connect, 404, teapot], multiplier: 0.5, budget: 2 }
    targets:`, 1), []string{
			`upstreams.users.hash_key: "query:x": want ip, path, header:NAME or cookie:NAME`,
			`upstreams.users.bounded_load: must be >= 1`,
			`upstreams.users.health.path: required, starting with '/'`,
			`upstreams.users.health.expect_status: "600"`,
			`upstreams.users.health.jitter: must be in [0, 1)`,
			`upstreams.users.outlier.max_ejection_percent: must be 0..100`,
			`upstreams.users.outlier.max_ejection: must be at least base_ejection`,
			`upstreams.users.circuit.failure_ratio: must be 0..1`,
			`upstreams.users.circuit.successes: can't exceed half_open_requests (1)`,
			`upstreams.users.retry.attempts: must be 1..10`,
			`upstreams.users.retry.on[1]: "404": want connect, timeout, reset or a 5xx status code`,
			`upstreams.users.retry.on[2]: "teapot"`,
			`upstreams.users.retry.multiplier: must be >= 1`,
			`upstreams.users.retry.budget: must be 0..1`,
		}},
		{"hash key without consistent_hash", strings.Replace(minimal, "    targets:", "    hash_key: ip\n    targets:", 1),
			[]string{`upstreams.users.hash_key: only used by the consistent_hash balancer`}},
		{"response buffer too large", "server:\n  read_timeout: 5s\n  buffer_response_bytes: 32MiB\n" + minimal,
			[]string{`b.yaml:3: server.buffer_response_bytes: must be at most 16MiB, got 33554432`}},
		{"response buffer negative", "server: { buffer_response_bytes: -1 }\n" + minimal,
			[]string{`b.yaml:1: server.buffer_response_bytes: "-1": not a size`}},
		{"bad trusted proxy", "server: { trusted_proxies: [10.0.0.0/33] }\n" + minimal, []string{`server.trusted_proxies[0]: "10.0.0.0/33" is not a CIDR`}},
		{"bad observability settings", "metrics:\n  data_plane_path: metrics\naccess_log:\n  sample: 2\n  buffer: -1\ntracing:\n  otlp_endpoint: collector:4318\n  sample: 1.5\n" + minimal, []string{
			`b.yaml:2: metrics.data_plane_path: "metrics": a path such as "/metrics"`,
			`b.yaml:4: access_log.sample: must be in (0, 1], got 2`,
			`b.yaml:5: access_log.buffer: must be between 1 and 1048576 lines, got -1`,
			`b.yaml:7: tracing.otlp_endpoint: "collector:4318": want an http(s) URL`,
			`b.yaml:8: tracing.sample: must be in [0, 1], got 1.5`,
		}},
		{"bad redact_headers", strings.Replace(minimal, "admin: { password: test-secret }", "admin:\n  password: test-secret\n  redact_headers:\n    - X-Session\n    - \"X Bad\"\n    - x-session\n    - \"\"", 1), []string{
			`b.yaml:6: admin.redact_headers[1]: "X Bad" is not a header name`,
			`b.yaml:7: admin.redact_headers[2]: "x-session" is listed twice (names match case-insensitively)`,
			`b.yaml:8: admin.redact_headers[3]: "" is not a header name`,
		}},
		{"bad console settings", strings.Replace(minimal, "admin: { password: test-secret }", "admin:\n  password: test-secret\n  session_ttl: 200h\n  prometheus_url: \"prom:9090\"", 1), []string{
			`b.yaml:4: admin.session_ttl: must be between 1s and 168h, got 200h0m0s`,
			`b.yaml:5: admin.prometheus_url: "prom:9090": want an http(s) URL`,
		}},
		{"bad public_origin", strings.Replace(minimal, "admin: { password: test-secret }", "admin:\n  password: test-secret\n  public_origin: \"admin.example.com\"", 1), []string{
			`b.yaml:4: admin.public_origin: "admin.example.com": want an origin`,
		}},
		{"public_origin with a path", strings.Replace(minimal, "admin: { password: test-secret }", "admin:\n  password: test-secret\n  public_origin: \"https://admin.example.com/sluice?x=1\"", 1), []string{
			`b.yaml:4: admin.public_origin: "https://admin.example.com/sluice?x=1": want an origin`,
		}},
		{"bad admin hosts", strings.Replace(minimal, "admin: { password: test-secret }", "admin:\n  password: test-secret\n  hosts:\n    - admin.example.com\n    - \"admin.example.com:9901\"\n    - \"http://admin.example.com\"\n    - \"*.example.com\"", 1), []string{
			`b.yaml:6: admin.hosts[1]: "admin.example.com:9901": want a host name`,
			`b.yaml:7: admin.hosts[2]: "http://admin.example.com": want a host name`,
			`b.yaml:8: admin.hosts[3]: "*.example.com": want a host name`,
		}},
		{"negative websocket_drain", "server:\n  websocket_drain: -1s\n" + minimal,
			[]string{`b.yaml:2: server.websocket_drain: duration "-1s" must not be negative`}},
		{"bad escaped_slashes", "server:\n  path:\n    escaped_slashes: allow\n" + minimal,
			[]string{`b.yaml:3: server.path.escaped_slashes: want reject, keep or decode, got "allow"`}},
		{"bad merge_slashes", "server: { path: { merge_slashes: sometimes } }\n" + minimal,
			[]string{`b.yaml:1: server.path.merge_slashes: want true or false, got "sometimes"`}},
		{"unknown server.path field", "server: { path: { merge_slash: true } }\n" + minimal,
			[]string{`b.yaml:1: server.path.merge_slash: unknown field (did you mean "merge_slashes"?)`}},
		{"bad route escaped_slashes", strings.Replace(minimal, "upstream: users", "upstream: users\n    path: { escaped_slashes: Keep }", 1),
			[]string{`b.yaml:11: routes[0].path.escaped_slashes: want reject, keep or decode, got "Keep"`}},
		{"route can't change merge_slashes", strings.Replace(minimal, "upstream: users", "upstream: users\n    path: { merge_slashes: false }", 1),
			[]string{`b.yaml:11: routes[0].path.merge_slashes: unknown field`}},
		{"match paths that normalisation changes", strings.Replace(minimal, "match: { prefix: /api/users/ }", "match: { prefix: /api//users/ }", 1) + `  - name: b
    match: { path: "/caf\u00e9/./menu" }
    upstream: users
  - name: c
    match: { prefix: /files/a%2fb/ }
    upstream: users
  - name: d
    match: { path: /x/%2e%2e/admin }
    upstream: users
  - name: e
    match: { prefix: "/a/%7e" }
    upstream: users
`, []string{
			`b.yaml:9: routes[0].match.prefix: "/api//users/" can never match: requests are normalised before matching; write it as "/api/users/"`,
			`b.yaml:12: routes[1].match.path: "/café/./menu" can never match: requests are normalised before matching; write it as "/caf%C3%A9/menu"`,
			`b.yaml:15: routes[2].match.prefix: "/files/a%2fb/" can never match: requests are normalised before matching, and one like it gets 400 (encoded slash (%2F) in path)`,
			`b.yaml:18: routes[3].match.path: "/x/%2e%2e/admin" can never match: requests are normalised before matching, and one like it gets 400 (encoded dot segment (%2E) in path)`,
			`b.yaml:21: routes[4].match.prefix: "/a/%7e" can never match: requests are normalised before matching; write it as "/a/~"`,
		}},
		{"access log sample 0", "access_log: { enabled: true, sample: 0 }\n" + minimal, []string{
			`b.yaml:1: access_log.sample: must be in (0, 1], got 0 (to log nothing, set enabled: false)`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("b.yaml", []byte(tc.src), nil)
			if err == nil {
				t.Fatal("want an error")
			}
			var errs Errors
			if !errors.As(err, &errs) {
				t.Fatalf("error is %T, want config.Errors: %v", err, err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not contain %q:\n%v", w, err)
				}
			}
			if len(tc.want) > 1 && len(errs) < len(tc.want) {
				t.Errorf("want all %d errors reported at once, got %d:\n%v", len(tc.want), len(errs), err)
			}
		})
	}
}

// server.path and a route's own escaped_slashes reach the options the
// gateway normalises with; a route that doesn't set it inherits the
// server's.
func TestPathSettings(t *testing.T) {
	src := `
server:
  path:
    merge_slashes: false
    escaped_slashes: decode
admin: { password: x }
upstreams:
  u: { targets: [ { url: "http://127.0.0.1:9001" } ] }
routes:
  - name: files
    match: { prefix: /files/a%2Fb/ }
    upstream: u
    path: { escaped_slashes: keep }
  - name: other
    match: { prefix: /other//x/ }
    upstream: u
`
	c, err := Parse("p.yaml", []byte(src), nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := c.PathOptions(nil), (pathnorm.Options{KeepEmptySegments: true, EscapedSlashes: pathnorm.Decode}); got != want {
		t.Errorf("server PathOptions = %+v, want %+v", got, want)
	}
	if got, want := c.PathOptions(c.Routes[0]), (pathnorm.Options{KeepEmptySegments: true, EscapedSlashes: pathnorm.Keep}); got != want {
		t.Errorf("files PathOptions = %+v, want %+v", got, want)
	}
	if got := c.Routes[1].Path.EscapedSlashes; got != "decode" {
		t.Errorf("other route inherits escaped_slashes %q, want decode", got)
	}
	// Only the route's keep makes its %2F prefix valid: decoded, the
	// prefix is another path; rejected, no request has it.
	noKeep := strings.Replace(src, "    path: { escaped_slashes: keep }\n", "", 1)
	if _, err := Parse("p.yaml", []byte(noKeep), nil); err == nil || !strings.Contains(err.Error(), `p.yaml:11: routes[0].match.prefix: "/files/a%2Fb/" can never match: requests are normalised before matching; write it as "/files/a/b/"`) {
		t.Errorf("decode server, %%2F prefix: %v", err)
	}
	noKeep = strings.Replace(noKeep, "escaped_slashes: decode", "escaped_slashes: reject", 1)
	if _, err := Parse("p.yaml", []byte(noKeep), nil); err == nil || !strings.Contains(err.Error(), `p.yaml:11: routes[0].match.prefix: "/files/a%2Fb/" can never match: requests are normalised before matching, and one like it gets 400 (encoded slash (%2F) in path)`) {
		t.Errorf("reject server, %%2F prefix: %v", err)
	}
}

func TestResilienceDefaults(t *testing.T) {
	c, err := Parse("m.yaml", []byte(strings.Replace(minimal, "    targets:", `    balancer: consistent_hash
    health: { path: /healthz }
    circuit: {}
    targets:`, 1)), nil)
	if err != nil {
		t.Fatal(err)
	}
	u := c.Upstreams["users"]
	if u.HashKey != "ip" {
		t.Errorf("hash_key default %q", u.HashKey)
	}
	h := u.Health
	if h.Interval.D() != 5*time.Second || h.Timeout.D() != time.Second || h.ExpectStatus != "200-399" || h.Healthy != 2 || h.Unhealthy != 3 || h.Jitter != 0.1 {
		t.Errorf("health defaults %+v", h)
	}
	cb := u.Circuit
	if cb.Failures != 5 || cb.OpenFor.D() != 30*time.Second || cb.HalfOpenRequests != 3 || cb.Successes != 2 || cb.MinRequests != 20 {
		t.Errorf("circuit defaults %+v", cb)
	}
	r := u.Retry
	if r.Attempts != 2 || r.Backoff.D() != 25*time.Millisecond || r.Multiplier != 2 || r.Budget != 0.2 || len(r.On) != 1 || r.On[0] != "connect" {
		t.Errorf("retry defaults %+v", r)
	}
}

// admin.redact_headers: the default list names the credential headers and
// the configured API key header; a list given replaces it; [] empties it.
func TestRedactHeadersDefaults(t *testing.T) {
	cases := []struct {
		name, src string
		want      []string
	}{
		{"default", minimal, []string{"Authorization", "Proxy-Authorization", "Cookie", "Set-Cookie", "X-API-Key"}},
		{"default with a custom API key header", "auth: { api_keys: { header: X-Gateway-Pass } }\n" + minimal,
			[]string{"Authorization", "Proxy-Authorization", "Cookie", "Set-Cookie", "X-Gateway-Pass"}},
		{"default when the API key header is one of the list (not listed twice)", "auth: { api_keys: { header: cookie } }\n" + minimal,
			[]string{"Authorization", "Proxy-Authorization", "Cookie", "Set-Cookie"}},
		{"given list replaces the default", strings.Replace(minimal, "password: test-secret", "password: test-secret, redact_headers: [X-Session, X-Upstream-Sig]", 1),
			[]string{"X-Session", "X-Upstream-Sig"}},
		{"empty list", strings.Replace(minimal, "password: test-secret", "password: test-secret, redact_headers: []", 1), []string{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse("r.yaml", []byte(tc.src), nil)
			if err != nil {
				t.Fatal(err)
			}
			if got := c.Admin.RedactHeaders; !slices.Equal(got, tc.want) {
				t.Errorf("redact_headers %q, want %q", got, tc.want)
			}
		})
	}
	// Defaulting a second config must not share or change the package's list.
	c, _ := Parse("r.yaml", []byte(minimal), nil)
	c.Admin.RedactHeaders[0] = "changed"
	if DefaultRedactHeaders[0] != "Authorization" {
		t.Error("defaulting aliased DefaultRedactHeaders")
	}
}

func TestExpand(t *testing.T) {
	lookup := env("A", "x", "EMPTY", "")
	cases := []struct{ in, want, err string }{
		{"plain", "plain", ""},
		{"${A}", "x", ""},
		{"pre-${A}-post", "pre-x-post", ""},
		{"${B:-def}", "def", ""},
		{"${EMPTY:-def}", "def", ""},
		{"${EMPTY}", "", ""},
		{"$$A and $${A}", "$A and ${A}", ""},
		{"pa$word", "pa$word", ""},
		{"end$", "end$", ""},
		{"${B}", "", "B is not set"},
		{"${A", "", "unclosed"},
		{"${1X}", "", "not a valid environment variable name"},
	}
	for _, c := range cases {
		got, err := expand(c.in, lookup)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("expand(%q) err = %v, want %q", c.in, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("expand(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
}

func TestByteSize(t *testing.T) {
	cases := map[string]int64{"0": 0, "512": 512, "16KiB": 16384, "10MiB": 10 << 20, "1GiB": 1 << 30, "64KB": 64000, "2 MB": 2000000, "7B": 7}
	for in, want := range cases {
		got, err := ParseByteSize(in)
		if err != nil || int64(got) != want {
			t.Errorf("ParseByteSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "-1", "1.5MiB", "MiB", "99999999999999999999", "9999999999GiB"} {
		if _, err := ParseByteSize(bad); err == nil {
			t.Errorf("ParseByteSize(%q) accepted", bad)
		}
	}
}

func TestLoadFileAndExample(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "c.yaml")
	if err := os.WriteFile(p, []byte(minimal), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(p)
	if err != nil || c.Source != p {
		t.Fatalf("Load: %v %v", c, err)
	}
	if _, err := Load(filepath.Join(dir, "missing.yaml")); err == nil || !strings.Contains(err.Error(), "missing.yaml") {
		t.Errorf("missing file error = %v", err)
	}
	// The shipped example must always be valid.
	t.Setenv("SLUICE_ADMIN_PASSWORD", "x")
	if _, err := Load("../../examples/sluice.yaml"); err != nil {
		t.Errorf("examples/sluice.yaml: %v", err)
	}
}

// Every YAML example in the README must be a valid config, so the docs
// can't drift from the schema.
func TestReadmeExamplesAreValid(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := strings.Split(string(readme), "```yaml\n")[1:]
	if len(blocks) < 2 {
		t.Fatalf("found %d yaml examples in README.md", len(blocks))
	}
	for i, b := range blocks {
		src := b[:strings.Index(b, "```")]
		if !strings.Contains(src, "admin:") && !strings.Contains(src, "config_key:") {
			src += "admin: { listen: \"off\" }\n" // a fragment: the admin block is elsewhere
		}
		if _, err := Parse(fmt.Sprintf("README.md yaml block %d", i+1), []byte(src), env("SLUICE_ADMIN_PASSWORD", "x", "JWT_SECRET", "0123456789abcdef0123456789abcdef")); err != nil {
			t.Errorf("%v\n%s", err, src)
		}
	}
}

func TestResolvePaths(t *testing.T) {
	cases := []struct{ source, path, want string }{
		{"/etc/sluice/sluice.yaml", "keys.json", "/etc/sluice/keys.json"},
		{"/etc/sluice/sluice.yaml", "../data/q.json", "/etc/data/q.json"},
		{"/etc/sluice/sluice.yaml", "/var/lib/k.json", "/var/lib/k.json"},
		{"consul:sluice/config", "keys.json", "keys.json"},
		{"", "keys.json", "keys.json"},
		{"/etc/sluice/sluice.yaml", "", ""},
	}
	for _, c := range cases {
		if got := (&Config{Source: c.source}).Resolve(c.path); got != c.want {
			t.Errorf("Resolve(%q) from %q = %q, want %q", c.path, c.source, got, c.want)
		}
	}
}

// Regression: an upstream with Consul discovery and no consul block got
// an implied block without defaults, refused as "consul.wait: must be
// between 1s and 10m", so the README's discovery example could be neither
// validated nor pushed.
func TestDiscoveryImpliesADefaultedConsulBlock(t *testing.T) {
	c, err := Parse("d.yaml", []byte(`
admin: { password: x }
upstreams:
  users: { discovery: { consul: { service: user-service } } }
routes:
  - { name: users, match: { prefix: /users/ }, upstream: users }
`), nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Consul == nil || !c.Consul.Implied || c.Consul.Wait.D() != 5*time.Minute {
		t.Errorf("implied consul block: %+v", c.Consul)
	}
	c, err = Parse("d.yaml", []byte("consul: { address: 127.0.0.1:8500 }\n"+minimal), nil)
	if err != nil || c.Consul.Implied || c.Consul.Wait.D() != 5*time.Minute {
		t.Errorf("written consul block: %+v %v", c.Consul, err)
	}
}

// Regression: the README's bootstrap file (only a consul block naming the
// config key) was refused for want of an admin password, which belongs to
// the config in the key.
func TestBootstrapFileNeedsNoAdminPassword(t *testing.T) {
	if _, err := Parse("boot.yaml", []byte("consul:\n  address: 127.0.0.1:8500\n  config_key: sluice/config\n"), nil); err != nil {
		t.Errorf("bootstrap refused: %v", err)
	}
	if _, err := Parse("c.yaml", []byte("consul:\n  address: 127.0.0.1:8500\n"), nil); err == nil || !strings.Contains(err.Error(), "no password is set") {
		t.Errorf("a config without config_key still needs the password: %v", err)
	}
}

// The optional booleans hold their effective value after Load, so
// /admin/config shows what applies.
func TestOptionalBooleansAreDefaulted(t *testing.T) {
	c, err := Parse("m.yaml", []byte(minimal), nil)
	if err != nil {
		t.Fatal(err)
	}
	for name, p := range map[string]*bool{
		"server.services_health": c.Server.ServicesHealth, "metrics.enabled": c.Metrics.Enabled,
		"admin.auth": c.Admin.Auth, "server.path.merge_slashes": c.Server.Path.MergeSlashes,
		"auth.api_keys.bearer": c.Auth.APIKeys.Bearer,
	} {
		if p == nil || !*p {
			t.Errorf("%s = %v after defaults, want true", name, p)
		}
	}
	c, err = Parse("m.yaml", []byte("server: { services_health: false }\nmetrics: { enabled: false }\n"+minimal), nil)
	if err != nil || *c.Server.ServicesHealth || *c.Metrics.Enabled {
		t.Errorf("explicit false lost: %v", err)
	}
}
