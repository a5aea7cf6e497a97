package admin

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"sync"
	"time"

	"github.com/sluicegw/sluice/edge/config"

	"github.com/valyala/fasthttp"
)

// The web console logs in once with the admin credentials and then holds
// a session cookie. A cookie is sent by the browser on its own, so it
// authorizes reads only: a state-changing call (any method but GET, HEAD
// and OPTIONS) must also carry the session's CSRF token in the
// X-CSRF-Token header, which a page on another origin can't read and so
// can't send.
const (
	sessionCookie = config.ConsoleSessionCookie
	csrfHeader    = "X-CSRF-Token"
	// consoleHeader marks the console's own calls: a 401 to them carries
	// no WWW-Authenticate challenge, which would make the browser pop up
	// its Basic login dialog over the console's own.
	consoleHeader = "X-Sluice-Console"
	// maxSessions bounds the store: a client that logs in in a loop can't
	// grow it without end (the oldest session gives way).
	maxSessions = 1024
)

// session is one console login.
type session struct {
	csrf    string
	expires time.Time
}

// sessions is the in-memory session store. Sessions are keyed by the
// SHA-256 of their id, so a lookup's timing says nothing about how close a
// guessed id is to a real one. They die with the process.
type sessions struct {
	ttl time.Duration
	now func() time.Time
	mu  sync.Mutex
	m   map[[32]byte]*session
}

func newSessions(ttl time.Duration) *sessions {
	return &sessions{ttl: ttl, now: time.Now, m: map[[32]byte]*session{}}
}

// create makes a new session with fresh random id and CSRF token. It never
// reuses an id the client sent (no session fixation: the caller drops the
// old one).
func (s *sessions) create() (id string, sess session) {
	id, sess.csrf = randomToken(), randomToken()
	now := s.now()
	sess.expires = now.Add(s.ttl)
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.m) >= maxSessions {
		s.pruneLocked(now)
	}
	for len(s.m) >= maxSessions { // all live: drop the one closest to expiry
		var oldest [32]byte
		first := true
		for k, v := range s.m {
			if first || v.expires.Before(s.m[oldest].expires) {
				oldest, first = k, false
			}
		}
		delete(s.m, oldest)
	}
	s.m[sha256.Sum256([]byte(id))] = &sess
	return id, sess
}

// get returns the live session with this id.
func (s *sessions) get(id []byte) (session, bool) {
	if len(id) == 0 {
		return session{}, false
	}
	k := sha256.Sum256(id)
	s.mu.Lock()
	defer s.mu.Unlock()
	sess, ok := s.m[k]
	if !ok {
		return session{}, false
	}
	if !s.now().Before(sess.expires) {
		delete(s.m, k)
		return session{}, false
	}
	return *sess, true
}

func (s *sessions) drop(id []byte) {
	k := sha256.Sum256(id)
	s.mu.Lock()
	delete(s.m, k)
	s.mu.Unlock()
}

func (s *sessions) pruneLocked(now time.Time) {
	for k, v := range s.m {
		if !now.Before(v.expires) {
			delete(s.m, k)
		}
	}
}

func randomToken() string {
	var b [32]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand panics rather)
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// safeMethod reports whether a method only reads (RFC 9110 9.2.1): those
// are the calls a session cookie alone may make.
func safeMethod(m []byte) bool {
	s := string(m)
	return s == "GET" || s == "HEAD" || s == "OPTIONS"
}

// sameOrigin reports whether the request's Origin header, when it has one,
// names this listener (originAllowed). Browsers send Origin on every POST
// (Fetch 3.1), so a page elsewhere is caught here even before the CSRF
// token is checked.
func (a *Auth) sameOrigin(ctx *fasthttp.RequestCtx) bool {
	o := ctx.Request.Header.Peek("Origin")
	return len(o) == 0 || a.originAllowed(ctx, string(o))
}

// sessionFor returns the live session the request's cookie names.
func (a *Auth) sessionFor(ctx *fasthttp.RequestCtx) (session, bool) {
	return a.sessions.get(ctx.Request.Header.Cookie(sessionCookie))
}

// cookieAllows decides a request that has no valid Authorization header:
// ok when it carries a live session cookie, comes from the console
// (X-Sluice-Console, Sec-Fetch-Site same-origin or absent) and, for a
// state-changing method, carries the session's CSRF token from this
// origin. status and msg say
// why not.
func (a *Auth) cookieAllows(ctx *fasthttp.RequestCtx) (ok bool, status int, msg string) {
	sess, live := a.sessionFor(ctx)
	if !live {
		return false, fasthttp.StatusUnauthorized, "unauthorized"
	}
	// The browser sends the cookie with any request a page of the same
	// site makes, 127.0.0.1:8080 included (cookies ignore ports, RFC 6265
	// section 8.5), e.g. an <img> of /debug/pprof/profile. Only the
	// console's own calls carry X-Sluice-Console, which no page elsewhere
	// can add without a CORS preflight the listener never grants.
	if len(ctx.Request.Header.Peek(consoleHeader)) == 0 {
		return false, fasthttp.StatusForbidden, "a console session is honoured only on the console's own calls (" + consoleHeader + "); use Basic credentials or the token elsewhere"
	}
	// The console never profiles: a session can't start the costly
	// /debug/pprof handlers, whichever form of the path routed here.
	if bytes.HasPrefix(ctx.Path(), []byte("/debug/")) || bytes.HasPrefix(ctx.Request.URI().PathOriginal(), []byte("/debug/")) {
		return false, fasthttp.StatusForbidden, "/debug/pprof needs Basic credentials or the token, not a console session"
	}
	if site := string(ctx.Request.Header.Peek("Sec-Fetch-Site")); site != "" && site != "same-origin" && site != "none" {
		return false, fasthttp.StatusForbidden, "a console session is honoured only on requests from the console's own origin"
	}
	if safeMethod(ctx.Method()) {
		return true, 0, ""
	}
	tok := ctx.Request.Header.Peek(csrfHeader)
	if !a.sameOrigin(ctx) || subtle.ConstantTimeCompare(tok, []byte(sess.csrf)) != 1 {
		return false, fasthttp.StatusForbidden, "missing or wrong CSRF token: a console session may change state only from the console (send " + csrfHeader + ")"
	}
	return true, 0, ""
}

// consoleAuth answers the console's own auth endpoints: POST /ui/login,
// POST /ui/logout and GET /ui/api/session. It reports whether path was
// one of them.
func (a *Auth) consoleAuth(ctx *fasthttp.RequestCtx) bool {
	switch string(ctx.Path()) {
	case "/ui/login":
		if string(ctx.Method()) != "POST" {
			writeJSON(ctx, fasthttp.StatusMethodNotAllowed, map[string]string{"error": "method not allowed"})
			return true
		}
		a.login(ctx)
	case "/ui/logout":
		if string(ctx.Method()) != "POST" {
			writeJSON(ctx, fasthttp.StatusMethodNotAllowed, map[string]string{"error": "method not allowed"})
			return true
		}
		if _, live := a.sessionFor(ctx); live {
			if ok, status, msg := a.cookieAllows(ctx); !ok {
				writeJSON(ctx, status, map[string]string{"error": msg})
				return true
			}
			a.sessions.drop(ctx.Request.Header.Cookie(sessionCookie))
		}
		a.setCookie(ctx, "", -1)
		writeJSON(ctx, fasthttp.StatusOK, map[string]string{"status": "logged out"})
	case "/ui/api/session":
		body := map[string]any{"auth_required": a.enabled, "authenticated": !a.enabled}
		if sess, live := a.sessionFor(ctx); live && a.enabled {
			body["authenticated"], body["csrf_token"], body["expires_at"] = true, sess.csrf, sess.expires.UTC().Format(time.RFC3339)
		}
		writeJSON(ctx, fasthttp.StatusOK, body)
	default:
		return false
	}
	return true
}

func (a *Auth) login(ctx *fasthttp.RequestCtx) {
	ip := ctx.RemoteIP().String()
	if !a.sameOrigin(ctx) {
		writeJSON(ctx, fasthttp.StatusForbidden, map[string]string{"error": "cross-origin login refused"})
		return
	}
	var creds struct{ Username, Password string }
	if json.Unmarshal(ctx.PostBody(), &creds) != nil || creds.Username == "" {
		writeJSON(ctx, fasthttp.StatusBadRequest, map[string]string{"error": `want {"username": "...", "password": "..."}`})
		return
	}
	// Whatever session the client came with is dropped: a new login always
	// gets a new id (no session fixation).
	if old := ctx.Request.Header.Cookie(sessionCookie); len(old) > 0 {
		a.sessions.drop(old)
	}
	if !a.enabled {
		writeJSON(ctx, fasthttp.StatusOK, map[string]any{"authenticated": true})
		return
	}
	key := clientKey(ctx.RemoteIP())
	if d := a.limiter.begin(key); d > 0 {
		tooManyFailures(ctx, d)
		return
	}
	ok := a.credentialsMatch([]byte(creds.Username), []byte(creds.Password))
	a.limiter.end(key, ok)
	if !ok {
		a.failures.Add(1)
		a.log.Warn("admin console login failed", "client_ip", ip)
		writeJSON(ctx, fasthttp.StatusUnauthorized, map[string]string{"error": "wrong user name or password"})
		return
	}
	id, sess := a.sessions.create()
	a.setCookie(ctx, id, int(a.sessions.ttl/time.Second))
	a.log.Info("admin console login", "client_ip", ip)
	writeJSON(ctx, fasthttp.StatusOK, map[string]any{
		"authenticated": true, "csrf_token": sess.csrf, "expires_at": sess.expires.UTC().Format(time.RFC3339),
	})
}

// setCookie sets (maxAge > 0) or clears (maxAge < 0) the session cookie:
// HttpOnly (no script reads it), SameSite=Strict (no other site's page or
// link sends it), Secure on a TLS connection or behind an https
// admin.public_origin, Path=/ because the console
// calls /admin/, /info and /metrics too.
func (a *Auth) setCookie(ctx *fasthttp.RequestCtx, value string, maxAge int) {
	var c fasthttp.Cookie
	c.SetKey(sessionCookie)
	c.SetValue(value)
	c.SetPath("/")
	c.SetHTTPOnly(true)
	c.SetSameSite(fasthttp.CookieSameSiteStrictMode)
	c.SetSecure(ctx.IsTLS() || a.secureCookie)
	if maxAge > 0 {
		c.SetMaxAge(maxAge)
		c.SetExpire(a.sessions.now().Add(time.Duration(maxAge) * time.Second))
	} else {
		c.SetExpire(fasthttp.CookieExpireDelete)
	}
	ctx.Response.Header.SetCookie(&c)
}
