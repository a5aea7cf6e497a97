package admin

import (
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// DNS rebinding (review H2): a page on a name the attacker controls,
// re-pointed at 127.0.0.1, sends its own name as Host and Origin. The
// listener refuses any Host it doesn't know with 421 (RFC 9110 section
// 15.5.20) before authentication, so even admin.auth: false gives such a
// page nothing; known names pass. RFC 6454 section 7.3: Origin must name
// the listener itself.
func TestAdminRefusesUnknownHosts(t *testing.T) {
	cases := []struct {
		name, method, path, host, origin string
		want                             int
	}{
		{"rebinding read", "GET", "/admin/config", "rebind.evil:9901", "", 421},
		{"rebinding write", "POST", "/admin/apikeys", "rebind.evil:9901", "http://rebind.evil:9901", 421},
		{"rebinding console login", "POST", "/ui/login", "rebind.evil:9901", "http://rebind.evil:9901", 421},
		{"rebinding session", "GET", "/ui/api/session", "rebind.evil", "", 421},
		{"rebinding console page", "GET", "/ui/", "rebind.evil:9901", "", 421},
		{"loopback v4", "GET", "/admin/config", "127.0.0.1:9901", "", 200},
		{"loopback v6", "GET", "/admin/config", "[::1]:9901", "", 200},
		{"other IP", "GET", "/admin/config", "10.1.2.3:9901", "", 200},
		{"localhost", "POST", "/admin/apikeys", "LocalHost:9901", "http://LocalHost:9901", 200},
		{"admin.listen host", "GET", "/admin/config", "gw.internal:9901", "", 200},
		{"admin.hosts", "POST", "/admin/apikeys", "admin.example.com", "http://admin.example.com", 200},
		{"suffix of a known name", "GET", "/admin/config", "evil-admin.example.com", "", 421},
		{"known host, origin another port", "POST", "/admin/apikeys", "127.0.0.1:9901", "http://127.0.0.1:8080", 403},
		{"known host, rebinding origin", "POST", "/admin/apikeys", "127.0.0.1:9901", "http://rebind.evil:9901", 403},
		{"probe under any name", "GET", "/health", "rebind.evil:9901", "", 200},
		{"no Host (HTTP/1.0 client)", "GET", "/admin/config", "", "", 200},
	}
	h := NewAuth(false, "", "", "", nil).AllowHosts("gw.internal:9901", []string{"admin.example.com"}).
		Wrap(func(ctx *fasthttp.RequestCtx) { ctx.SetStatusCode(200) })
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var ctx fasthttp.RequestCtx
			ctx.Request.Header.SetMethod(tc.method)
			ctx.Request.SetRequestURI(tc.path)
			ctx.Request.Header.SetHost(tc.host)
			if tc.origin != "" {
				ctx.Request.Header.Set("Origin", tc.origin)
			}
			h(&ctx)
			if ctx.Response.StatusCode() != tc.want {
				t.Fatalf("%s %s Host %q Origin %q: %d %s, want %d", tc.method, tc.path, tc.host, tc.origin,
					ctx.Response.StatusCode(), ctx.Response.Body(), tc.want)
			}
		})
	}
}

// With auth on, a console session made on a known name can't be used
// from a rebinding page either (the cookie isn't sent to another name,
// and the Host check refuses the name before the cookie is looked at).
func TestConsoleRefusesRebindingHost(t *testing.T) {
	now := time.Unix(1e9, 0)
	_, h := newTestAuth(t, &now)
	c := &consoleClient{h: h}
	if code := c.login(t, "admin", "s3cret"); code != 200 {
		t.Fatalf("login: %d", code)
	}
	resp, _ := c.do("GET", "/admin/config", "", withHeader("Host", "rebind.evil:9901"))
	if resp.StatusCode() != 421 {
		t.Fatalf("cookie under a rebinding Host: %d, want 421", resp.StatusCode())
	}
}

// Behind a TLS proxy (review M3) the listener is plain HTTP while the
// browser is at https://admin.example.com: admin.public_origin makes that
// Origin the listener's own (RFC 6454 section 7), its host a known name,
// and the cookie Secure (RFC 6265 section 4.1.2.5).
func TestConsoleBehindTLSProxy(t *testing.T) {
	cases := []struct {
		name, publicOrigin, origin string
		wantLogin                  int
		wantSecure                 bool
	}{
		{"public origin https", "https://admin.example.com", "https://admin.example.com", 200, true},
		{"public origin, case differs", "https://Admin.Example.com", "https://admin.example.com", 200, true},
		{"public origin http", "http://admin.example.com", "http://admin.example.com", 200, false},
		{"origin not the public one", "https://admin.example.com", "https://admin.example.com:8443", 403, false},
		{"no public origin", "", "https://admin.example.com", 421, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			now := time.Unix(1e9, 0)
			a, _ := newTestAuth(t, &now)
			h := a.SetPublicOrigin(tc.publicOrigin).Wrap(func(ctx *fasthttp.RequestCtx) { writeJSON(ctx, 200, map[string]string{"reached": "yes"}) })
			c := &consoleClient{h: h}
			proxied := []reqOpt{withHeader("Host", "admin.example.com"), withHeader("Origin", tc.origin)}
			resp, m := c.do("POST", "/ui/login", `{"username":"admin","password":"s3cret"}`, proxied...)
			if resp.StatusCode() != tc.wantLogin {
				t.Fatalf("login: %d %v, want %d", resp.StatusCode(), m, tc.wantLogin)
			}
			if tc.wantLogin != 200 {
				return
			}
			var ck fasthttp.Cookie
			ck.SetKey(sessionCookie)
			resp.Header.Cookie(&ck)
			if ck.Secure() != tc.wantSecure {
				t.Errorf("cookie Secure %v, want %v", ck.Secure(), tc.wantSecure)
			}
			c.cookie, c.csrf = string(ck.Value()), m["csrf_token"].(string)
			if resp, m := c.do("POST", "/admin/reload", "", append(proxied, withCSRF(c.csrf))...); resp.StatusCode() != 200 {
				t.Errorf("write through the proxy: %d %v", resp.StatusCode(), m)
			}
		})
	}
}
