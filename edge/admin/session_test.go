package admin

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// consoleClient drives an Auth-wrapped handler the way the console does:
// it logs in, keeps the cookie and the CSRF token.
type consoleClient struct {
	h      fasthttp.RequestHandler
	cookie string
	csrf   string
}

type reqOpt func(*fasthttp.Request)

func withCSRF(tok string) reqOpt {
	return func(r *fasthttp.Request) { r.Header.Set(csrfHeader, tok) }
}
func withHeader(k, v string) reqOpt { return func(r *fasthttp.Request) { r.Header.Set(k, v) } }
func withoutHeader(k string) reqOpt { return func(r *fasthttp.Request) { r.Header.Del(k) } }

func (c *consoleClient) do(method, path, body string, opts ...reqOpt) (*fasthttp.Response, map[string]any) {
	var ctx fasthttp.RequestCtx
	ctx.Request.Header.SetMethod(method)
	ctx.Request.SetRequestURI(path)
	ctx.Request.Header.SetHost("127.0.0.1:9901")
	ctx.Request.SetBodyString(body)
	ctx.Request.Header.Set(consoleHeader, "1") // as api.js does on every call
	if c.cookie != "" {
		ctx.Request.Header.SetCookie(sessionCookie, c.cookie)
	}
	for _, o := range opts {
		o(&ctx.Request)
	}
	c.h(&ctx)
	var m map[string]any
	_ = json.Unmarshal(ctx.Response.Body(), &m)
	var resp fasthttp.Response
	ctx.Response.CopyTo(&resp)
	return &resp, m
}

func (c *consoleClient) login(t *testing.T, user, pass string) int {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"username": user, "password": pass})
	resp, m := c.do("POST", "/ui/login", string(body))
	if resp.StatusCode() == 200 {
		var ck fasthttp.Cookie
		ck.SetKey(sessionCookie)
		if !resp.Header.Cookie(&ck) {
			t.Fatal("login answered 200 with no session cookie")
		}
		c.cookie = string(ck.Value())
		c.csrf, _ = m["csrf_token"].(string)
	}
	return resp.StatusCode()
}

func newTestAuth(t *testing.T, now *time.Time) (*Auth, fasthttp.RequestHandler) {
	a := NewAuth(true, "admin", "s3cret", "", slog.New(slog.NewJSONHandler(&bytes.Buffer{}, nil))).SetSessionTTL(time.Minute)
	a.sessions.now = func() time.Time { return *now }
	a.limiter.now = func() time.Time { return *now }
	return a, a.Wrap(func(ctx *fasthttp.RequestCtx) { writeJSON(ctx, 200, map[string]string{"reached": "yes"}) })
}

// The cookie: HttpOnly, SameSite=Strict, a lifetime, Secure only on TLS
// (this call is plain HTTP) (RFC 6265bis 4.1.2).
func TestConsoleLoginCookie(t *testing.T) {
	now := time.Unix(1e9, 0)
	_, h := newTestAuth(t, &now)
	c := &consoleClient{h: h}
	body := `{"username":"admin","password":"s3cret"}`
	resp, m := c.do("POST", "/ui/login", body)
	if resp.StatusCode() != 200 || m["csrf_token"] == "" {
		t.Fatalf("login: %d %v", resp.StatusCode(), m)
	}
	sc := string(resp.Header.Peek("Set-Cookie"))
	for _, want := range []string{sessionCookie + "=", "HttpOnly", "SameSite=Strict", "max-age=60", "path=/"} {
		if !strings.Contains(strings.ToLower(sc), strings.ToLower(want)) {
			t.Errorf("Set-Cookie %q lacks %q", sc, want)
		}
	}
	if strings.Contains(strings.ToLower(sc), "secure") {
		t.Errorf("Set-Cookie %q is Secure on a plain-HTTP connection (the browser would never send it back)", sc)
	}
}

func TestConsoleSession(t *testing.T) {
	now := time.Unix(1e9, 0)
	_, h := newTestAuth(t, &now)
	c := &consoleClient{h: h}

	// Not logged in: reads and writes are refused; the console's calls get
	// no Basic challenge (the browser would pop up its own dialog).
	if r, _ := c.do("GET", "/info", "", withHeader(consoleHeader, "1")); r.StatusCode() != 401 || len(r.Header.Peek("WWW-Authenticate")) != 0 {
		t.Errorf("console GET without a session: %d, challenge %q", r.StatusCode(), r.Header.Peek("WWW-Authenticate"))
	}
	if code := c.login(t, "admin", "wrong"); code != 401 {
		t.Errorf("wrong password: %d, want 401", code)
	}
	if code := c.login(t, "root", "s3cret"); code != 401 {
		t.Errorf("wrong user: %d, want 401", code)
	}
	if c.cookie != "" {
		t.Fatal("a failed login set a cookie")
	}
	if code := c.login(t, "admin", "s3cret"); code != 200 {
		t.Fatalf("login: %d", code)
	}
	if r, m := c.do("GET", "/ui/api/session", ""); r.StatusCode() != 200 || m["authenticated"] != true || m["csrf_token"] != c.csrf {
		t.Errorf("session: %d %v", r.StatusCode(), m)
	}

	cases := []struct {
		name         string
		method, path string
		opts         []reqOpt
		want         int
	}{
		{"read with the cookie", "GET", "/info", nil, 200},
		{"write with cookie and token", "POST", "/admin/reload", []reqOpt{withCSRF(c.csrf)}, 200},
		{"write with cookie and token, same origin", "POST", "/admin/reload", []reqOpt{withCSRF(c.csrf), withHeader("Origin", "http://127.0.0.1:9901")}, 200},
		{"write with the cookie alone", "POST", "/admin/reload", nil, 403},
		{"DELETE with the cookie alone", "DELETE", "/admin/apikeys/x", nil, 403},
		{"write with a wrong token", "POST", "/admin/reload", []reqOpt{withCSRF(c.csrf + "x")}, 403},
		{"write with another session's token", "POST", "/admin/reload", []reqOpt{withCSRF(randomToken())}, 403},
		{"write with the token from another origin", "POST", "/admin/reload", []reqOpt{withCSRF(c.csrf), withHeader("Origin", "http://127.0.0.1:8080")}, 403},
		{"Basic still works beside the cookie", "POST", "/admin/reload", []reqOpt{withHeader("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte("admin:s3cret")))}, 200},
	}
	for _, tc := range cases {
		r, m := c.do(tc.method, tc.path, "", tc.opts...)
		if r.StatusCode() != tc.want {
			t.Errorf("%s: %d %v, want %d", tc.name, r.StatusCode(), m, tc.want)
		}
		if tc.want == 403 && !strings.Contains(m["error"].(string), "CSRF") {
			t.Errorf("%s: error %q does not say why", tc.name, m["error"])
		}
	}

	// Expiry: the session dies after the TTL.
	now = now.Add(61 * time.Second)
	if r, _ := c.do("GET", "/info", ""); r.StatusCode() != 401 {
		t.Errorf("expired session: %d, want 401", r.StatusCode())
	}
	if _, m := c.do("GET", "/ui/api/session", ""); m["authenticated"] != false {
		t.Errorf("expired session reported as %v", m)
	}
}

// No session fixation: a login never adopts the id the client came with,
// and the old session is gone after it. Logout ends the session.
func TestConsoleSessionFixationAndLogout(t *testing.T) {
	now := time.Unix(1e9, 0)
	_, h := newTestAuth(t, &now)
	c := &consoleClient{h: h}
	if c.login(t, "admin", "s3cret") != 200 {
		t.Fatal("login")
	}
	first := c.cookie
	if c.login(t, "admin", "s3cret") != 200 {
		t.Fatal("second login")
	}
	if c.cookie == first {
		t.Fatal("a second login kept the session id the client sent")
	}
	old := &consoleClient{h: h, cookie: first}
	if r, _ := old.do("GET", "/info", ""); r.StatusCode() != 401 {
		t.Errorf("the id replaced at login still works: %d", r.StatusCode())
	}
	planted := &consoleClient{h: h, cookie: "attacker-chosen"}
	if planted.login(t, "admin", "s3cret") != 200 || planted.cookie == "attacker-chosen" {
		t.Errorf("login adopted a planted id")
	}

	if r, _ := c.do("POST", "/ui/logout", ""); r.StatusCode() != 403 {
		t.Errorf("logout without the CSRF token: %d, want 403", r.StatusCode())
	}
	if r, _ := c.do("POST", "/ui/logout", "", withCSRF(c.csrf)); r.StatusCode() != 200 {
		t.Errorf("logout: %d", r.StatusCode())
	}
	if r, _ := c.do("GET", "/info", ""); r.StatusCode() != 401 {
		t.Errorf("after logout: %d, want 401", r.StatusCode())
	}
}

// Password guessing: after freeFailures failures an IP waits, longer
// after each further failure; the right password is refused while it
// waits; a success clears the record.
func TestConsoleLoginBackoff(t *testing.T) {
	now := time.Unix(1e9, 0)
	_, h := newTestAuth(t, &now)
	c := &consoleClient{h: h}
	for i := 0; i < freeFailures; i++ {
		if code := c.login(t, "admin", "guess"); code != 401 {
			t.Fatalf("failure %d: %d, want 401", i+1, code)
		}
	}
	if code := c.login(t, "admin", "guess"); code != 401 {
		t.Fatalf("failure %d: %d, want 401 (it starts the lockout)", freeFailures+1, code)
	}
	resp, _ := c.do("POST", "/ui/login", `{"username":"admin","password":"s3cret"}`)
	if resp.StatusCode() != 429 || string(resp.Header.Peek("Retry-After")) != "1" {
		t.Fatalf("locked out: %d Retry-After %q, want 429 and 1", resp.StatusCode(), resp.Header.Peek("Retry-After"))
	}
	now = now.Add(time.Second)
	if code := c.login(t, "admin", "guess"); code != 401 {
		t.Fatalf("after the lockout: %d", code)
	}
	resp, _ = c.do("POST", "/ui/login", `{"username":"admin","password":"s3cret"}`)
	if resp.StatusCode() != 429 || string(resp.Header.Peek("Retry-After")) != "2" {
		t.Fatalf("second lockout: %d Retry-After %q, want 429 and 2 (doubled)", resp.StatusCode(), resp.Header.Peek("Retry-After"))
	}
	now = now.Add(2 * time.Second)
	if code := c.login(t, "admin", "s3cret"); code != 200 {
		t.Fatalf("right password after the lockout: %d", code)
	}
	if code := c.login(t, "admin", "guess"); code != 401 {
		t.Fatalf("a success did not clear the record: %d", code)
	}
}

func TestConsoleLoginRefusesOtherOrigin(t *testing.T) {
	now := time.Unix(1e9, 0)
	_, h := newTestAuth(t, &now)
	c := &consoleClient{h: h}
	resp, _ := c.do("POST", "/ui/login", `{"username":"admin","password":"s3cret"}`, withHeader("Origin", "http://evil.example"))
	if resp.StatusCode() != 403 || len(resp.Header.Peek("Set-Cookie")) != 0 {
		t.Errorf("cross-origin login: %d, cookie %q", resp.StatusCode(), resp.Header.Peek("Set-Cookie"))
	}
}

// The console's files are served without credentials, with a CSP that
// keeps scripts and styles to the page's own origin and forbids framing.
func TestConsoleStaticFiles(t *testing.T) {
	now := time.Unix(1e9, 0)
	a, _ := newTestAuth(t, &now)
	h := a.Wrap(Handler(Hooks{Info: func() any { return map[string]string{"version": "test"} }}))
	c := &consoleClient{h: h}
	for _, tc := range []struct{ path, ctype string }{
		{"/ui/", "text/html"}, {"/ui/app.js", "text/javascript"}, {"/ui/style.css", "text/css"},
	} {
		r, _ := c.do("GET", tc.path, "")
		if r.StatusCode() != 200 || !strings.HasPrefix(string(r.Header.ContentType()), tc.ctype) {
			t.Errorf("%s: %d %s", tc.path, r.StatusCode(), r.Header.ContentType())
		}
		csp := string(r.Header.Peek("Content-Security-Policy"))
		if !strings.Contains(csp, "default-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") || strings.Contains(csp, "unsafe") {
			t.Errorf("%s: CSP %q", tc.path, csp)
		}
		if string(r.Header.Peek("X-Frame-Options")) != "DENY" || string(r.Header.Peek("X-Content-Type-Options")) != "nosniff" {
			t.Errorf("%s: framing/sniffing headers missing", tc.path)
		}
	}
	for _, p := range []string{"/ui/../admin.go", "/ui/nope.js", "/ui/api/features", "/ui/%61pi/features", "/ui//api/features", "/ui/./api/features"} {
		if r, _ := c.do("GET", p, ""); r.StatusCode() == 200 {
			t.Errorf("%s: 200 without credentials", p)
		}
	}
	if r, _ := c.do("GET", "/info", "", withHeader("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte("admin:s3cret")))); r.StatusCode() != 200 || string(r.Header.Peek("X-Content-Type-Options")) != "nosniff" ||
		!strings.Contains(string(r.Header.Peek("Content-Security-Policy")), "default-src 'none'") {
		t.Errorf("JSON answers lack nosniff and a CSP: %s", r.Header.String())
	}
	if r, _ := c.do("GET", "/ui", ""); r.StatusCode() != 301 || !strings.HasSuffix(string(r.Header.Peek("Location")), "/ui/") {
		t.Errorf("/ui: %d to %q, want a redirect to /ui/", r.StatusCode(), r.Header.Peek("Location"))
	}
	if r, m := c.do("GET", "/ui/api/prom/query?query=up", "", withHeader("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte("admin:s3cret")))); r.StatusCode() != 404 || !strings.Contains(m["error"].(string), "admin.prometheus_url") {
		t.Errorf("query with no Prometheus: %d %v", r.StatusCode(), m)
	}
}

// The guard decides on the path the router matches, not only on the
// normalized one: an encoded traversal that normalizes to an open path
// (/health, /ui/...) but is routed to a guarded handler is refused.
func TestAuthSeesTheRoutedPath(t *testing.T) {
	reached := 0
	guarded := func(ctx *fasthttp.RequestCtx) { reached++ }
	a := NewAuth(true, "admin", "s3cret", "", slog.New(slog.NewJSONHandler(&bytes.Buffer{}, nil)))
	h := a.Wrap(Handler(Hooks{Metrics: guarded, Info: func() any { reached++; return nil }}))
	for _, p := range []string{
		"/debug/pprof/..%2F..%2Fhealth", "/debug/pprof/..%2F..%2Fui%2Fx", "/debug/pprof/..%2f..%2fready",
		"/admin/apikeys/..%2F..%2Fui%2Fx", "/admin/quotas/..%2F..%2Fhealth",
	} {
		var ctx fasthttp.RequestCtx
		ctx.Request.SetRequestURI(p)
		h(&ctx)
		if ctx.Response.StatusCode() != 401 {
			t.Errorf("%s (normalized %s): %d without credentials, want 401", p, ctx.Path(), ctx.Response.StatusCode())
		}
	}
	if reached != 0 {
		t.Errorf("a guarded handler ran %d times without credentials", reached)
	}
	for _, p := range []string{"/health", "/ui/", "/ui/app.js"} {
		var ctx fasthttp.RequestCtx
		ctx.Request.SetRequestURI(p)
		h(&ctx)
		if ctx.Response.StatusCode() != 200 {
			t.Errorf("%s: %d, want it open", p, ctx.Response.StatusCode())
		}
	}
}

// A session cookie is sent by the browser with any request a page of the
// same site makes (127.0.0.1:8080 and :9901 are one site: cookies ignore
// ports, RFC 6265 section 8.5), e.g. <img src=".../debug/pprof/profile">.
// It authorizes only the console's own calls, which carry
// X-Sluice-Console and come from its own origin (Fetch's Sec-Fetch-Site,
// W3C Fetch Metadata section 2.1); Basic credentials need neither.
func TestConsoleCookieOnlyOnConsoleCalls(t *testing.T) {
	now := time.Unix(1e9, 0)
	_, h := newTestAuth(t, &now)
	c := &consoleClient{h: h}
	if code := c.login(t, "admin", "s3cret"); code != 200 {
		t.Fatalf("login: %d", code)
	}
	cases := []struct {
		name, path string
		opts       []reqOpt
		want       int
	}{
		{"console call", "/admin/config", nil, 200},
		{"console call, same-origin", "/admin/config", []reqOpt{withHeader("Sec-Fetch-Site", "same-origin")}, 200},
		{"typed in the address bar", "/admin/config", []reqOpt{withHeader("Sec-Fetch-Site", "none")}, 200},
		{"no console header (an <img> from :8080)", "/debug/pprof/profile?seconds=100000000", []reqOpt{withoutHeader(consoleHeader), withHeader("Sec-Fetch-Site", "same-site")}, 403},
		{"no console header, no fetch metadata", "/admin/config", []reqOpt{withoutHeader(consoleHeader)}, 403},
		{"console header from another port", "/admin/config", []reqOpt{withHeader("Sec-Fetch-Site", "same-site")}, 403},
		{"console header cross-site", "/ui/api/prom/query?query=up", []reqOpt{withHeader("Sec-Fetch-Site", "cross-site")}, 403},
		{"pprof not even from the console", "/debug/pprof/heap", nil, 403},
		{"pprof by another path form", "/debug/pprof/..%2F..%2Fadmin/config", nil, 403},
		{"pprof with Basic", "/debug/pprof/heap", []reqOpt{withoutHeader(consoleHeader), withHeader("Authorization", basicAuth("admin", "s3cret"))}, 200},
		{"Basic needs no console header", "/admin/config", []reqOpt{withoutHeader(consoleHeader), withHeader("Authorization", basicAuth("admin", "s3cret"))}, 200},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, m := c.do("GET", tc.path, "", tc.opts...)
			if resp.StatusCode() != tc.want {
				t.Fatalf("%d %v, want %d", resp.StatusCode(), m, tc.want)
			}
		})
	}
}
