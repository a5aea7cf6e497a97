package admin

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/sluicegw/sluice/edge/config"

	"github.com/valyala/fasthttp"
)

// Auth guards the admin API: Basic credentials, or a bearer token for
// automation. Credentials are compared as SHA-256 digests with
// subtle.ConstantTimeCompare, so neither timing nor length tells an
// attacker how close a guess was.
type Auth struct {
	enabled  bool
	user     [32]byte
	pass     [32]byte
	token    [32]byte
	hasToken bool
	log      *slog.Logger
	failures atomic.Int64
	hosts    []string        // names besides IP literals and localhost (hosts.go)
	sessions *sessions       // web console logins (session.go)
	limiter  *failureLimiter // backoff on failed credential checks (limiter.go)
	// publicOrigin is admin.public_origin, lower-cased; secureCookie is
	// true when it is https (SetPublicOrigin, hosts.go).
	publicOrigin string
	secureCookie bool
}

// NewAuth makes the guard. With enabled false every request passes.
// Console sessions last config.DefaultSessionTTL unless SetSessionTTL
// says otherwise.
func NewAuth(enabled bool, username, password, token string, log *slog.Logger) *Auth {
	a := &Auth{enabled: enabled, log: log, sessions: newSessions(config.DefaultSessionTTL), limiter: newFailureLimiter()}
	a.user = sha256.Sum256([]byte(username))
	a.pass = sha256.Sum256([]byte(password))
	if token != "" {
		a.token, a.hasToken = sha256.Sum256([]byte(token)), true
	}
	return a
}

// SetSessionTTL sets how long a console login lasts (admin.session_ttl).
// Call it before serving.
func (a *Auth) SetSessionTTL(d time.Duration) *Auth {
	a.sessions.ttl = d
	return a
}

// Failures counts refused admin requests.
func (a *Auth) Failures() int64 { return a.failures.Load() }

// open paths answer probes (liveness, readiness) and serve the console's
// static files (which hold no data) without credentials.
func open(path []byte) bool {
	return string(path) == "/health" || string(path) == "/ready" ||
		string(path) == "/ui" || (bytes.HasPrefix(path, []byte("/ui/")) && !bytes.HasPrefix(path, []byte("/ui/api/")))
}

// openRequest reports whether a request may pass without credentials.
// Both forms of its path must be open: the decoded, normalized one
// (ctx.Path) and the one the router matches (the path as sent), so that
// "/debug/pprof/..%2F..%2Fhealth", which normalizes to /health but is
// routed to pprof, is not let through.
func openRequest(ctx *fasthttp.RequestCtx) bool {
	return open(ctx.Path()) && open(ctx.Request.URI().PathOriginal())
}

// crossSite is true for a state-changing request (any method but GET,
// HEAD, OPTIONS) a browser sent on behalf of another site: a page
// elsewhere can make a browser POST to the admin listener (a form, or a
// fetch without CORS), with Basic credentials the browser cached, or
// with none needed under auth: false. Such a request carries
// Sec-Fetch-Site (cross-site, or same-site for another port or
// subdomain) or an Origin other than the listener's own (originAllowed),
// "null" included. Command-line clients send neither header and pass.
func (a *Auth) crossSite(ctx *fasthttp.RequestCtx) bool {
	if ctx.IsGet() || ctx.IsHead() || ctx.IsOptions() {
		return false
	}
	if site := string(ctx.Request.Header.Peek("Sec-Fetch-Site")); site == "cross-site" || site == "same-site" {
		return true
	}
	return !a.sameOrigin(ctx)
}

// Wrap puts the guard in front of h. A request for a host name the
// listener doesn't know is refused first (hostRefused). A state-changing request a browser
// sent for another site is refused next (crossSite). A request passes with Basic
// credentials or the bearer token (the JSON API, as always), or with a
// console session cookie: for reads alone, or with the session's CSRF
// token for anything that changes state.
func (a *Auth) Wrap(h fasthttp.RequestHandler) fasthttp.RequestHandler {
	return func(ctx *fasthttp.RequestCtx) {
		if a.hostRefused(ctx) {
			a.failures.Add(1)
			return
		}
		if a.crossSite(ctx) {
			a.warn("admin request from another site refused", "client_ip", ctx.RemoteIP().String(),
				"method", string(ctx.Method()), "path", string(ctx.Path()), "origin", string(ctx.Request.Header.Peek("Origin")))
			writeJSON(ctx, fasthttp.StatusForbidden, map[string]string{"error": "cross-site admin request refused (CSRF protection)"})
			return
		}
		if a.consoleAuth(ctx) {
			return
		}
		if !a.enabled || openRequest(ctx) {
			h(ctx)
			return
		}
		if authz := ctx.Request.Header.Peek("Authorization"); len(authz) > 0 {
			key := clientKey(ctx.RemoteIP())
			if d := a.limiter.begin(key); d > 0 {
				a.failures.Add(1)
				a.warn("admin credential check refused: too many failures", "client_ip", ctx.RemoteIP().String(),
					"method", string(ctx.Method()), "path", string(ctx.Path()))
				tooManyFailures(ctx, d)
				return
			}
			ok := a.allowed(authz)
			a.limiter.end(key, ok)
			if ok {
				h(ctx)
				return
			}
		}
		ok, status, msg := a.cookieAllows(ctx)
		if ok {
			h(ctx)
			return
		}
		a.failures.Add(1)
		a.log.Warn("admin authentication failed", "client_ip", ctx.RemoteIP().String(),
			"method", string(ctx.Method()), "path", string(ctx.Path()), "status", status)
		if status == fasthttp.StatusUnauthorized && len(ctx.Request.Header.Peek(consoleHeader)) == 0 {
			ctx.Response.Header.Set("WWW-Authenticate", `Basic realm="sluice admin", charset="UTF-8"`)
		}
		writeJSON(ctx, status, map[string]string{"error": msg})
	}
}

func (a *Auth) warn(msg string, args ...any) {
	if a.log != nil {
		a.log.Warn(msg, args...)
	}
}

func (a *Auth) allowed(authz []byte) bool {
	switch {
	case bytes.HasPrefix(authz, []byte("Basic ")):
		raw, err := base64.StdEncoding.DecodeString(string(authz[len("Basic "):]))
		if err != nil {
			return false
		}
		user, pass, ok := bytes.Cut(raw, []byte(":"))
		if !ok {
			return false
		}
		return a.credentialsMatch(user, pass)
	case a.hasToken && bytes.HasPrefix(authz, []byte("Bearer ")):
		t := sha256.Sum256(authz[len("Bearer "):])
		return subtle.ConstantTimeCompare(t[:], a.token[:]) == 1
	}
	return false
}

// credentialsMatch compares a user name and password with the admin's.
func (a *Auth) credentialsMatch(user, pass []byte) bool {
	u, p := sha256.Sum256(user), sha256.Sum256(pass)
	// Both compared always: no early exit on a wrong user name.
	return subtle.ConstantTimeCompare(u[:], a.user[:])&subtle.ConstantTimeCompare(p[:], a.pass[:]) == 1
}
