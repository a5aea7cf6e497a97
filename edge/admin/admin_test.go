package admin

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/sluicegw/sluice/edge/config"
	"github.com/sluicegw/sluice/limiter"
	"github.com/valyala/fasthttp"
)

func call(h fasthttp.RequestHandler, method, path string) (int, map[string]any, string) {
	var ctx fasthttp.RequestCtx
	ctx.Request.Header.SetMethod(method)
	ctx.Request.SetRequestURI(path)
	h(&ctx)
	var body map[string]any
	_ = json.Unmarshal(ctx.Response.Body(), &body)
	return ctx.Response.StatusCode(), body, string(ctx.Response.Body())
}

func testConfig(t *testing.T) *config.Config {
	cfg, err := config.Parse("a.yaml", []byte(`
admin: { password: pw, token: tok3n }
upstreams: { u: { targets: [ { url: "http://127.0.0.1:1" } ] } }
routes:
  - name: r
    match: { prefix: / }
    upstream: u
    request_headers: { set: { Authorization: "Bearer s3cret", X-Api-Key: k3y, X-Env: prod } }
`), nil)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestAdminEndpoints(t *testing.T) {
	ready, draining := true, false
	reloadErr := error(nil)
	reloads := 0
	cfg := testConfig(t)
	var resetNames []string
	h := Handler(Hooks{
		Upstreams: func() any { return []map[string]string{{"name": "users"}} },
		Breakers:  func() any { return []map[string]string{{"name": "users@127.0.0.1:9001", "state": "open"}} },
		ResetBreakers: func(name string) int {
			resetNames = append(resetNames, name)
			if name == "ghost" {
				return 0
			}
			return 2
		},
		Ready:    func() bool { return ready },
		Draining: func() bool { return draining },
		Info:     func() any { return map[string]string{"version": "test"} },
		Config:   func() *config.Config { return cfg },
		Reload:   func() error { reloads++; return reloadErr },
	})

	if code, body, _ := call(h, "GET", "/health"); code != 200 || body["status"] != "ok" {
		t.Errorf("/health: %d %v", code, body)
	}
	if code, body, _ := call(h, "GET", "/ready"); code != 200 || body["status"] != "ready" {
		t.Errorf("/ready: %d %v", code, body)
	}
	ready, draining = false, true
	if code, body, _ := call(h, "GET", "/ready"); code != 503 || body["status"] != "draining" {
		t.Errorf("/ready while draining: %d %v", code, body)
	}
	ready, draining = false, false
	if code, body, _ := call(h, "GET", "/ready"); code != 503 || body["status"] != "starting" {
		t.Errorf("/ready before load: %d %v", code, body)
	}
	if code, body, _ := call(h, "GET", "/info"); code != 200 || body["version"] != "test" {
		t.Errorf("/info: %d %v", code, body)
	}

	if code, body, _ := call(h, "POST", "/admin/reload"); code != 200 || body["status"] != "reloaded" || reloads != 1 {
		t.Errorf("reload: %d %v (%d calls)", code, body, reloads)
	}
	reloadErr = config.Errors{{File: "a.yaml", Line: 4, Field: "routes[0].upstream", Msg: "no upstream named \"x\""}}
	code, body, raw := call(h, "POST", "/admin/reload")
	if code != 400 || !strings.Contains(raw, `a.yaml:4: routes[0].upstream: no upstream named`) || body["error"] == nil {
		t.Errorf("refused reload: %d %s", code, raw)
	}
	reloadErr = errors.New("config: open /nope: no such file or directory")
	if code, _, raw := call(h, "POST", "/admin/reload"); code != 400 || !strings.Contains(raw, "no such file") {
		t.Errorf("reload with missing file: %d %s", code, raw)
	}

	code, _, raw = call(h, "GET", "/admin/config")
	if code != 200 || strings.Contains(raw, "s3cret") || strings.Contains(raw, "k3y") || strings.Contains(raw, `"pw"`) || strings.Contains(raw, "tok3n") || !strings.Contains(raw, `"X-Env": "prod"`) {
		t.Errorf("/admin/config must redact credentials and keep the rest: %d\n%s", code, raw)
	}
	if cfg.Routes[0].RequestHeaders.Set["Authorization"] != "Bearer s3cret" {
		t.Error("redaction changed the live config")
	}
	// Optional booleans show their effective values, not nothing.
	var shown struct {
		Server struct {
			ServicesHealth *bool `json:"services_health"`
		} `json:"server"`
		Metrics struct {
			Enabled *bool `json:"enabled"`
		} `json:"metrics"`
		Admin struct {
			Auth *bool `json:"auth"`
		} `json:"admin"`
	}
	if err := json.Unmarshal([]byte(raw), &shown); err != nil || shown.Server.ServicesHealth == nil || !*shown.Server.ServicesHealth ||
		shown.Metrics.Enabled == nil || !*shown.Metrics.Enabled || shown.Admin.Auth == nil || !*shown.Admin.Auth {
		t.Errorf("/admin/config leaves out effective defaults (services_health, metrics.enabled, admin.auth):\n%s", raw)
	}

	if code, body, _ := call(h, "GET", "/admin/reload"); code != 405 || body["error"] != "method not allowed" {
		t.Errorf("GET reload: %d %v", code, body)
	}
	if code, _, raw := call(h, "GET", "/admin/upstreams"); code != 200 || !strings.Contains(raw, `"name": "users"`) {
		t.Errorf("/admin/upstreams: %d %s", code, raw)
	}
	if code, _, raw := call(h, "GET", "/admin/circuit-breakers"); code != 200 || !strings.Contains(raw, `"state": "open"`) {
		t.Errorf("/admin/circuit-breakers: %d %s", code, raw)
	}
	if code, body, _ := call(h, "POST", "/admin/circuit-breakers/users/reset"); code != 200 || body["reset"] != float64(2) {
		t.Errorf("reset one: %d %v", code, body)
	}
	if code, body, _ := call(h, "POST", "/admin/circuit-breakers/reset"); code != 200 || body["reset"] != float64(2) {
		t.Errorf("reset all: %d %v", code, body)
	}
	if code, _, raw := call(h, "POST", "/admin/circuit-breakers/ghost/reset"); code != 404 || !strings.Contains(raw, `no circuit breaker named \"ghost\"`) {
		t.Errorf("reset unknown: %d %s", code, raw)
	}
	if strings.Join(resetNames, ",") != "users,,ghost" {
		t.Errorf("reset names %q", resetNames)
	}
	if code, body, _ := call(h, "GET", "/nope"); code != 404 || body["error"] != "not found" {
		t.Errorf("unknown path: %d %v", code, body)
	}
}

func TestAdminAuth(t *testing.T) {
	var logged bytes.Buffer
	a := NewAuth(true, "admin", "s3cret", "tok3n", slog.New(slog.NewJSONHandler(&logged, nil)))
	h := a.Wrap(func(ctx *fasthttp.RequestCtx) { ctx.SetStatusCode(200) })
	basic := func(u, p string) string { return "Basic " + base64.StdEncoding.EncodeToString([]byte(u+":"+p)) }
	cases := []struct {
		path, authz string
		want        int
	}{
		{"/admin/reload", "", 401},
		{"/admin/reload", basic("admin", "s3cret"), 200},
		{"/admin/reload", basic("admin", "wrong"), 401},
		{"/admin/reload", basic("root", "s3cret"), 401},
		{"/admin/reload", basic("admin", "s3cret-and-more"), 401},
		{"/admin/reload", "Basic !!notbase64", 401},
		{"/admin/reload", "Basic " + base64.StdEncoding.EncodeToString([]byte("no-colon")), 401},
		{"/admin/reload", "Bearer tok3n", 200},
		{"/admin/reload", "Bearer tok3", 401},
		{"/info", "", 401},
		{"/health", "", 200},
		{"/ready", "", 200},
	}
	for _, c := range cases {
		var ctx fasthttp.RequestCtx
		ctx.Request.SetRequestURI(c.path)
		if c.authz != "" {
			ctx.Request.Header.Set("Authorization", c.authz)
		}
		h(&ctx)
		if ctx.Response.StatusCode() != c.want {
			t.Errorf("%s %q: %d, want %d", c.path, c.authz, ctx.Response.StatusCode(), c.want)
		}
		if c.want == 401 && !strings.HasPrefix(string(ctx.Response.Header.Peek("WWW-Authenticate")), "Basic ") {
			t.Errorf("%s: 401 without WWW-Authenticate", c.path)
		}
	}
	if a.Failures() != 8 {
		t.Errorf("failures counted %d, want 8", a.Failures())
	}
	if !strings.Contains(logged.String(), `"msg":"admin authentication failed","client_ip":"0.0.0.0"`) {
		t.Errorf("failed attempts not logged with the client ip:\n%s", logged.String())
	}
	if strings.Contains(logged.String(), "s3cret") || strings.Contains(logged.String(), "tok3") {
		t.Error("a credential reached the log")
	}
	off := NewAuth(false, "", "", "", nil).Wrap(func(ctx *fasthttp.RequestCtx) { ctx.SetStatusCode(200) })
	var ctx fasthttp.RequestCtx
	ctx.Request.SetRequestURI("/admin/reload")
	off(&ctx)
	if ctx.Response.StatusCode() != 200 {
		t.Error("auth off still refused")
	}
}

func TestQuotaEndpoints(t *testing.T) {
	q, _ := limiter.OpenLocalQuotas("", time.Hour, slog.New(slog.NewTextHandler(io.Discard, nil)))
	defer q.Close()
	q.Take("key1", 10, time.Hour)
	q.Take("key1", 10, time.Hour)
	h := Handler(Hooks{Quotas: q})
	if code, body, _ := call(h, "GET", "/admin/quotas/key1"); code != 200 || body["used"] != float64(2) || body["per"] != "1h0m0s" {
		t.Errorf("usage: %d %v", code, body)
	}
	if code, _, _ := call(h, "GET", "/admin/quotas/nobody"); code != 404 {
		t.Errorf("unknown key: %d", code)
	}
	if code, body, _ := call(h, "POST", "/admin/quotas/key1/reset"); code != 200 || body["reset"] != "key1" {
		t.Errorf("reset: %d %v", code, body)
	}
	if code, _, _ := call(h, "GET", "/admin/quotas/key1"); code != 404 {
		t.Errorf("after reset: %d", code)
	}
}

// GET /admin/config hides the values of the headers admin.redact_headers
// names (case-insensitively), of the API key header, and of any header
// whose name contains a secret word, in both request_headers and
// response_headers; everything else is shown as configured.
func TestConfigRedactsSensitiveHeaders(t *testing.T) {
	type header struct {
		route int
		dir   string // request_headers or response_headers
		name  string
		value string
	}
	cases := []struct {
		name     string
		admin    string // extra admin fields
		auth     string // auth block
		redacted []header
		shown    []header
	}{
		{
			name: "default list",
			redacted: []header{
				{0, "request_headers", "authorization", "Bearer s3cret-1"},
				{0, "request_headers", "COOKIE", "sid=s3cret-2"},
				{0, "request_headers", "X-API-Key", "s3cret-3"},
				{1, "response_headers", "Set-Cookie", "sid=s3cret-4; HttpOnly"},
			},
			shown: []header{
				{0, "request_headers", "X-Env", "prod"},
				{1, "response_headers", "X-Served-By", "sluice"},
			},
		},
		{
			name:  "configured list, matched case-insensitively",
			admin: ", redact_headers: [X-Session, x-upstream-sig]",
			redacted: []header{
				{0, "request_headers", "x-session", "s3cret-1"},
				{0, "request_headers", "X-UPSTREAM-SIG", "s3cret-2"},
				{1, "response_headers", "X-Session", "s3cret-3"},
				// Not in the list, but named like credentials.
				{0, "request_headers", "Authorization", "Basic s3cret-4"},
				{1, "response_headers", "Set-Cookie", "s3cret-5"},
				{0, "request_headers", "X-Upstream-Token", "s3cret-6"},
			},
			shown: []header{
				{0, "request_headers", "X-Env", "prod"},
				{1, "response_headers", "X-Session-Region", "eu"},
			},
		},
		{
			name:     "a custom API key header is redacted even when the list leaves it out",
			admin:    ", redact_headers: [X-Session]",
			auth:     "auth: { api_keys: { header: X-Gateway-Pass } }\n",
			redacted: []header{{0, "request_headers", "X-Gateway-Pass", "s3cret-1"}},
			// Listed names match whole names, not parts of them.
			shown: []header{{0, "request_headers", "X-Gateway-Pass-Through", "yes"}},
		},
		{
			name:  "an empty list still redacts the API key header and secret-like names",
			admin: ", redact_headers: []",
			redacted: []header{
				{0, "request_headers", "X-API-Key", "s3cret-1"},
				{0, "request_headers", "Cookie", "s3cret-2"},
			},
			shown: []header{{0, "request_headers", "X-Session", "sess-1"}},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sets := [2]map[string][]string{{}, {}}
			for _, hs := range [][]header{tc.redacted, tc.shown} {
				for _, h := range hs {
					sets[h.route][h.dir] = append(sets[h.route][h.dir], fmt.Sprintf("%q: %q", h.name, h.value))
				}
			}
			var routes strings.Builder
			for i, prefix := range []string{"/a/", "/b/"} {
				fmt.Fprintf(&routes, "  - name: r%d\n    match: { prefix: %s }\n    upstream: u\n", i, prefix)
				for _, dir := range []string{"request_headers", "response_headers"} {
					if len(sets[i][dir]) > 0 {
						fmt.Fprintf(&routes, "    %s: { set: { %s } }\n", dir, strings.Join(sets[i][dir], ", "))
					}
				}
			}
			src := "admin: { password: pw" + tc.admin + " }\n" + tc.auth +
				"upstreams: { u: { targets: [ { url: \"http://127.0.0.1:1\" } ] } }\nroutes:\n" + routes.String()
			cfg, err := config.Parse("r.yaml", []byte(src), nil)
			if err != nil {
				t.Fatalf("%v\n%s", err, src)
			}
			h := Handler(Hooks{Config: func() *config.Config { return cfg }})
			code, _, raw := call(h, "GET", "/admin/config")
			if code != 200 {
				t.Fatalf("/admin/config: %d %s", code, raw)
			}
			type ops struct {
				Set map[string]string `json:"set"`
			}
			var got struct {
				Routes []struct {
					RequestHeaders  ops `json:"request_headers"`
					ResponseHeaders ops `json:"response_headers"`
				} `json:"routes"`
			}
			if err := json.Unmarshal([]byte(raw), &got); err != nil {
				t.Fatal(err)
			}
			value := func(h header) string {
				ops := got.Routes[h.route].RequestHeaders
				if h.dir == "response_headers" {
					ops = got.Routes[h.route].ResponseHeaders
				}
				return ops.Set[h.name]
			}
			for _, h := range tc.redacted {
				if v := value(h); v != "[redacted]" {
					t.Errorf("%s %s shown as %q", h.dir, h.name, v)
				}
				if strings.Contains(raw, h.value) {
					t.Errorf("the value of %s is in the answer", h.name)
				}
			}
			for _, h := range tc.shown {
				if v := value(h); v != h.value {
					t.Errorf("%s %s = %q, want %q shown", h.dir, h.name, v, h.value)
				}
			}
			if h := tc.redacted[0]; cfg.Routes[0].RequestHeaders.Set[h.name] != h.value {
				t.Error("redaction changed the live config")
			}
		})
	}
}

// POST /admin/upgrade answers with the outcome: 200 with both PIDs, 409
// when refused for the process's state, 400 with every config error, 500
// when the new process did not get ready; 404 without the hook.
func TestAdminUpgrade(t *testing.T) {
	if code, _, _ := call(Handler(Hooks{}), "POST", "/admin/upgrade"); code != 404 {
		t.Errorf("without an Upgrade hook: %d", code)
	}
	for _, tc := range []struct {
		name string
		pid  int
		err  error
		code int
		want string
	}{
		{"ok", 4242, nil, 200, `"pid":4242,"previous_pid":` + fmt.Sprint(os.Getpid())},
		{"busy", 0, fmt.Errorf("%w: an upgrade is already in progress", ErrConflict), 409, `"error":"upgrade refused: an upgrade is already in progress"`},
		{"config", 0, config.Errors{{File: "a.yaml", Line: 3, Field: "listen", Msg: "bad"}}, 400, `"details":["a.yaml:3: listen: bad"]`},
		{"failed", 0, errors.New("the new process did not get ready (child pid=7 exited: exit status 1); this one keeps serving"), 500, `exit status 1`},
	} {
		h := Handler(Hooks{Upgrade: func() (int, error) { return tc.pid, tc.err }})
		code, _, raw := call(h, "POST", "/admin/upgrade")
		squash := func(s string) string { return strings.Join(strings.Fields(s), "") } // the JSON is indented
		if code != tc.code || !strings.Contains(squash(raw), squash(tc.want)) {
			t.Errorf("%s: %d %s, want %d with %s", tc.name, code, raw, tc.code, tc.want)
		}
	}
	if code, _, _ := call(Handler(Hooks{Upgrade: func() (int, error) { return 1, nil }}), "GET", "/admin/upgrade"); code != 405 {
		t.Errorf("GET /admin/upgrade: %d, want 405", code)
	}
}

// A state-changing admin request a browser sends for another site is
// refused with 403 before credentials are even looked at (a browser
// replays cached Basic credentials; auth: false needs none): by
// Sec-Fetch-Site (Fetch Metadata, W3C) or by an Origin that is not the
// listener's own (RFC 6454 section 7). Reads, and clients that send
// neither header (curl, sluice itself), pass.
func TestAdminRefusesCrossSiteWrites(t *testing.T) {
	for _, enabled := range []bool{true, false} {
		h := NewAuth(enabled, "admin", "s3cret", "", nil).Wrap(func(ctx *fasthttp.RequestCtx) { ctx.SetStatusCode(200) })
		authz := "Basic " + base64.StdEncoding.EncodeToString([]byte("admin:s3cret"))
		cases := []struct {
			method, site, origin string
			want                 int
		}{
			{"POST", "", "", 200},
			{"POST", "same-origin", "http://127.0.0.1:9901", 200},
			{"POST", "none", "", 200}, // typed in the address bar, a bookmark
			{"POST", "cross-site", "", 403},
			{"POST", "same-site", "", 403},
			{"POST", "", "http://evil.example", 403},
			{"POST", "", "http://127.0.0.1:9902", 403},
			{"POST", "", "https://127.0.0.1:9901", 403},
			{"POST", "", "null", 403},
			{"DELETE", "cross-site", "", 403},
			{"PUT", "", "http://evil.example", 403},
			{"GET", "cross-site", "http://evil.example", 200},
			{"HEAD", "cross-site", "", 200},
		}
		for _, c := range cases {
			var ctx fasthttp.RequestCtx
			ctx.Request.Header.SetMethod(c.method)
			ctx.Request.SetRequestURI("/admin/upgrade")
			ctx.Request.Header.SetHost("127.0.0.1:9901")
			ctx.Request.Header.Set("Authorization", authz)
			if c.site != "" {
				ctx.Request.Header.Set("Sec-Fetch-Site", c.site)
			}
			if c.origin != "" {
				ctx.Request.Header.Set("Origin", c.origin)
			}
			h(&ctx)
			if got := ctx.Response.StatusCode(); got != c.want {
				t.Errorf("auth %v, %s site %q origin %q: %d, want %d", enabled, c.method, c.site, c.origin, got, c.want)
			}
			if c.want == 403 && !strings.Contains(string(ctx.Response.Body()), `"error"`) {
				t.Errorf("403 without a JSON error: %s", ctx.Response.Body())
			}
		}
	}
}

// While the write gate is shut (an upgrade), quota resets are refused
// with 503, a reason and Retry-After; reads still answer; once open,
// writes go through again.
func TestWriteGate(t *testing.T) {
	q, _ := limiter.OpenLocalQuotas("", time.Hour, slog.New(slog.NewTextHandler(io.Discard, nil)))
	defer q.Close()
	q.Take("key1", 10, time.Hour)
	gate := &WriteGate{}
	h := Handler(Hooks{Quotas: q, Writes: gate})
	gate.Shut("an upgrade is under way; retry")
	var ctx fasthttp.RequestCtx
	ctx.Request.Header.SetMethod("POST")
	ctx.Request.SetRequestURI("/admin/quotas/key1/reset")
	h(&ctx)
	if ctx.Response.StatusCode() != 503 || !strings.Contains(string(ctx.Response.Body()), "an upgrade is under way") ||
		string(ctx.Response.Header.Peek("Retry-After")) == "" {
		t.Errorf("reset through a shut gate: %d %s", ctx.Response.StatusCode(), ctx.Response.Body())
	}
	if code, _, _ := call(h, "GET", "/admin/quotas/key1"); code != 200 {
		t.Errorf("a read through a shut gate: %d", code)
	}
	gate.Open()
	if code, _, _ := call(h, "POST", "/admin/quotas/key1/reset"); code != 200 {
		t.Errorf("reset through an open gate: %d", code)
	}
}

// pprof's seconds is capped (review H4): under fasthttpadaptor nothing
// else ends a profile or trace asked to run for days.
func TestPprofSecondsCapped(t *testing.T) {
	h := Handler(Hooks{})
	for _, path := range []string{
		"/debug/pprof/profile?seconds=100000000", "/debug/pprof/trace?seconds=61", "/debug/pprof/heap?seconds=3600",
		"/debug/pprof/profile?seconds=0", "/debug/pprof/profile?seconds=-1", "/debug/pprof/profile?seconds=NaN", "/debug/pprof/trace?seconds=Inf",
	} {
		if code, body, _ := call(h, "GET", path); code != 400 || body["error"] == nil {
			t.Errorf("%s: %d %v, want 400 with an error", path, code, body)
		}
	}
	if code, _, _ := call(h, "GET", "/debug/pprof/heap"); code != 200 {
		t.Errorf("heap profile: %d", code)
	}
}
