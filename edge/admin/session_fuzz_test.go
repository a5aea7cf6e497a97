package admin

import (
	"bytes"
	"log/slog"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// FuzzConsoleAuth throws arbitrary requests at the console's guard with a
// live session in the store: no panic, a login body that is not the
// admin's credentials never starts a session, and a state-changing request
// reaches the API only with both the session's cookie and its CSRF token.
func FuzzConsoleAuth(f *testing.F) {
	f.Add("POST", "/admin/reload", "", "", "", []byte(""), true, true)
	f.Add("POST", "/admin/reload", "", "", "http://127.0.0.1:9901", []byte(""), true, false)
	f.Add("DELETE", "/admin/apikeys/x", "x", "y", "null", []byte("{}"), false, true)
	f.Add("POST", "/ui/login", "", "", "", []byte(`{"username":"admin","password":"s3cret!"}`), false, false)
	f.Add("POST", "/ui/login", "", "", "", []byte(`{"username":"admin","Password":"s3cret"}`), false, false)
	f.Add("POST", "/ui/logout", "", "", "", []byte(""), true, false)
	f.Add("GET", "/ui/api/session", "", "", "", []byte(""), true, false)
	f.Fuzz(func(t *testing.T, method, path, cookie, token, origin string, body []byte, useCookie, useToken bool) {
		a := NewAuth(true, "admin", "s3cret", "", slog.New(slog.NewTextHandler(&bytes.Buffer{}, nil))).SetSessionTTL(time.Hour)
		reached := false
		h := a.Wrap(func(ctx *fasthttp.RequestCtx) { reached = true })
		id, sess := a.sessions.create()
		if useCookie {
			cookie = id
		}
		if useToken {
			token = sess.csrf
		}
		var ctx fasthttp.RequestCtx
		ctx.Request.Header.SetMethod(method)
		ctx.Request.SetRequestURI(path)
		ctx.Request.Header.SetHost("127.0.0.1:9901")
		ctx.Request.Header.SetCookie(sessionCookie, cookie)
		ctx.Request.Header.Set(csrfHeader, token)
		if origin != "" {
			ctx.Request.Header.Set("Origin", origin)
		}
		ctx.Request.SetBody(body)
		h(&ctx)
		m := string(ctx.Request.Header.Method())
		p := string(ctx.Path())
		if p == "/ui/login" && m == "POST" && ctx.Response.StatusCode() == 200 &&
			!bytes.Contains(body, []byte(`"s3cret"`)) {
			t.Fatalf("login with body %q started a session", body)
		}
		if reached && !safeMethod(ctx.Method()) && !open(ctx.Path()) && (!useCookie || !useToken) {
			t.Fatalf("%s %s reached the API with cookie %q token %q", m, p, cookie, token)
		}
	})
}
