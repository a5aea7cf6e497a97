package admin

import (
	"encoding/json"
	"errors"
	"net/http/pprof"
	"net/url"
	"os"
	"strconv"
	"strings"

	"github.com/fasthttp/router"
	"github.com/sluicegw/sluice/edge/auth"
	"github.com/sluicegw/sluice/edge/cache"
	"github.com/sluicegw/sluice/edge/config"
	"github.com/sluicegw/sluice/limiter"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttpadaptor"
)

// Hooks are what the admin API reads and triggers.
type Hooks struct {
	// Ready reports whether the gateway should get traffic.
	Ready func() bool
	// Draining reports whether shutdown has begun (for /ready's reason).
	Draining func() bool
	// Info returns the body of GET /info.
	Info func() any
	// Config returns the config now serving.
	Config func() *config.Config
	// Reload re-reads the config source and applies it.
	Reload func() error
	// Upgrade hands the listening sockets to a new process and returns
	// its PID once it serves (nil: POST /admin/upgrade answers 404). An
	// error wrapping ErrConflict is answered 409, config.Errors 400.
	Upgrade func() (pid int, err error)
	// Upstreams returns the body of GET /admin/upstreams.
	Upstreams func() any
	// Breakers returns the body of GET /admin/circuit-breakers.
	Breakers func() any
	// ResetBreakers closes breakers by name ("" all, an upstream, or
	// "upstream@host:port") and returns how many.
	ResetBreakers func(name string) int
	// Keys is the API key store (nil: the key endpoints answer 404).
	Keys auth.KeyStore
	// Quotas is the quota store (nil: the quota endpoints answer 404).
	Quotas limiter.Quotas
	// PurgeCache purges the response cache (nil: the purge endpoint
	// answers 404).
	PurgeCache func(cache.Purge) (int, error)
	// Metrics serves GET /metrics (nil: 404).
	Metrics fasthttp.RequestHandler
	// PrometheusURL returns admin.prometheus_url now serving: the
	// console's Query page proxies to it ("" or nil: no Query page).
	PrometheusURL func() string
	// Writes gates the key and quota writes during upgrades (nil: open).
	Writes *WriteGate
}

// ErrConflict marks an upgrade refused because of the process's state
// (one is already running, or this process has handed over).
var ErrConflict = errors.New("upgrade refused")

// Handler returns the admin HTTP handler.
func Handler(h Hooks) fasthttp.RequestHandler {
	r := router.New()
	r.RedirectTrailingSlash = false
	r.HandleMethodNotAllowed = true
	r.GET("/health", func(ctx *fasthttp.RequestCtx) {
		writeJSON(ctx, fasthttp.StatusOK, map[string]string{"status": "ok"})
	})
	r.GET("/ready", func(ctx *fasthttp.RequestCtx) {
		switch {
		case h.Ready():
			writeJSON(ctx, fasthttp.StatusOK, map[string]string{"status": "ready"})
		case h.Draining():
			writeJSON(ctx, fasthttp.StatusServiceUnavailable, map[string]string{"status": "draining"})
		default:
			writeJSON(ctx, fasthttp.StatusServiceUnavailable, map[string]string{"status": "starting"})
		}
	})
	if h.Metrics != nil {
		r.GET("/metrics", h.Metrics)
	}
	r.GET("/info", func(ctx *fasthttp.RequestCtx) {
		writeJSON(ctx, fasthttp.StatusOK, h.Info())
	})
	r.POST("/admin/reload", func(ctx *fasthttp.RequestCtx) {
		if err := h.Reload(); err != nil {
			var ce config.Errors
			body := map[string]any{"error": "config refused; the previous config keeps serving"}
			if errors.As(err, &ce) {
				details := make([]string, len(ce))
				for i, e := range ce {
					details[i] = e.Error()
				}
				body["details"] = details
			} else {
				body["details"] = []string{err.Error()}
			}
			writeJSON(ctx, fasthttp.StatusBadRequest, body)
			return
		}
		writeJSON(ctx, fasthttp.StatusOK, map[string]string{"status": "reloaded"})
	})
	if h.Upgrade != nil {
		r.POST("/admin/upgrade", func(ctx *fasthttp.RequestCtx) { upgrade(ctx, h.Upgrade) })
	}
	r.GET("/admin/config", func(ctx *fasthttp.RequestCtx) {
		writeJSON(ctx, fasthttp.StatusOK, Redact(h.Config()))
	})
	r.GET("/admin/upstreams", func(ctx *fasthttp.RequestCtx) {
		writeJSON(ctx, fasthttp.StatusOK, h.Upstreams())
	})
	r.GET("/admin/circuit-breakers", func(ctx *fasthttp.RequestCtx) {
		writeJSON(ctx, fasthttp.StatusOK, h.Breakers())
	})
	r.POST("/admin/circuit-breakers/reset", func(ctx *fasthttp.RequestCtx) {
		writeJSON(ctx, fasthttp.StatusOK, map[string]int{"reset": h.ResetBreakers("")})
	})
	r.POST("/admin/circuit-breakers/{name}/reset", func(ctx *fasthttp.RequestCtx) {
		name, _ := ctx.UserValue("name").(string)
		n := h.ResetBreakers(name)
		if n == 0 {
			writeJSON(ctx, fasthttp.StatusNotFound, map[string]string{"error": "no circuit breaker named " + strconv.Quote(name)})
			return
		}
		writeJSON(ctx, fasthttp.StatusOK, map[string]int{"reset": n})
	})
	// Profiling, behind the same admin auth as everything else here.
	r.ANY("/debug/pprof/{path:*}", pprofHandler)
	if h.Keys != nil {
		keyRoutes(r, h.Keys, h.Writes)
	}
	if h.Quotas != nil {
		quotaRoutes(r, h.Quotas, h.Writes)
	}
	consoleRoutes(r, h)
	if h.PurgeCache != nil {
		cacheRoutes(r, h.PurgeCache)
	}
	r.NotFound = func(ctx *fasthttp.RequestCtx) {
		// The console's address without its slash; a /ui route of its own
		// would stop the router matching /ui/ to the console's catch-all.
		if string(ctx.Path()) == "/ui" {
			ctx.Redirect("/ui/", fasthttp.StatusMovedPermanently)
			return
		}
		writeJSON(ctx, fasthttp.StatusNotFound, map[string]string{"error": "not found"})
	}
	r.MethodNotAllowed = func(ctx *fasthttp.RequestCtx) {
		writeJSON(ctx, fasthttp.StatusMethodNotAllowed, map[string]string{"error": "method not allowed"})
	}
	r.PanicHandler = func(ctx *fasthttp.RequestCtx, _ any) {
		writeJSON(ctx, fasthttp.StatusInternalServerError, map[string]string{"error": "internal error"})
	}
	return r.Handler
}

// upgrade answers POST /admin/upgrade once the new process serves or
// has failed: 200 with both PIDs, 409 when refused (busy), 400 when the
// config is refused, 500 when the new process did not get ready.
func upgrade(ctx *fasthttp.RequestCtx, run func() (int, error)) {
	pid, err := run()
	if err == nil {
		writeJSON(ctx, fasthttp.StatusOK, map[string]any{"status": "upgraded", "pid": pid, "previous_pid": os.Getpid()})
		return
	}
	status, body := fasthttp.StatusInternalServerError, map[string]any{"error": err.Error()}
	var ce config.Errors
	switch {
	case errors.Is(err, ErrConflict):
		status = fasthttp.StatusConflict
	case errors.As(err, &ce):
		status = fasthttp.StatusBadRequest
		details := make([]string, len(ce))
		for i, e := range ce {
			details[i] = e.Error()
		}
		body["error"], body["details"] = "config refused; not upgrading, the running process keeps serving", details
	}
	writeJSON(ctx, status, body)
}

// Redact returns a copy of cfg safe to show: secrets are replaced by
// "[redacted]", and so are the values of credential headers the config
// sets (routes' request_headers and response_headers), every route match
// value but "*" (redactValues) and the userinfo and query of its URLs
// (redactURL). A header is a credential when
// admin.redact_headers names it, when it is the API key header, or when
// its name contains one of secretWords; names match case-insensitively.
func Redact(cfg *config.Config) *config.Config {
	if cfg == nil {
		return nil
	}
	c := *cfg
	if c.Auth.JWT != nil {
		j := *c.Auth.JWT
		j.Keys = append([]config.JWTKey(nil), j.Keys...)
		for i := range j.Keys {
			if j.Keys[i].Secret != "" {
				j.Keys[i].Secret = "[redacted]"
			}
		}
		c.Auth.JWT = &j
	}
	if cfg.Redis != nil && cfg.Redis.Password != "" {
		rc := *cfg.Redis
		rc.Password = "[redacted]"
		c.Redis = &rc
	}
	if c.Admin.Password != "" {
		c.Admin.Password = "[redacted]"
	}
	if c.Admin.Token != "" {
		c.Admin.Token = "[redacted]"
	}
	if cfg.Consul != nil {
		cc := *cfg.Consul
		if cc.Token != "" {
			cc.Token = "[redacted]"
		}
		cc.Address = redactURL(cc.Address)
		c.Consul = &cc
	}
	if c.Auth.JWT != nil && c.Auth.JWT.JWKS != nil {
		jw := *c.Auth.JWT.JWKS
		jw.URL = redactURL(jw.URL)
		c.Auth.JWT.JWKS = &jw
	}
	c.Tracing.OTLPEndpoint = redactURL(c.Tracing.OTLPEndpoint)
	c.Admin.PrometheusURL = redactURL(c.Admin.PrometheusURL)
	if cfg.Upstreams != nil {
		c.Upstreams = make(map[string]*config.Upstream, len(cfg.Upstreams))
		for name, u := range cfg.Upstreams {
			uc := *u
			uc.Targets = append([]config.Target(nil), u.Targets...)
			for i := range uc.Targets {
				uc.Targets[i].URL = redactURL(uc.Targets[i].URL)
			}
			c.Upstreams[name] = &uc
		}
	}
	sensitive := sensitiveHeaders(cfg)
	c.Routes = make([]*config.Route, len(cfg.Routes))
	for i, r := range cfg.Routes {
		rc := *r
		rc.RequestHeaders.Set = sensitive.redact(r.RequestHeaders.Set)
		rc.ResponseHeaders.Set = sensitive.redact(r.ResponseHeaders.Set)
		rc.Match.Headers = redactValues(r.Match.Headers)
		rc.Match.Query = redactValues(r.Match.Query)
		rc.Match.Cookies = redactValues(r.Match.Cookies)
		c.Routes[i] = &rc
	}
	return &c
}

// redactValues returns a copy of a route's match conditions with every
// value but "*" (present, any value) replaced: a route that matches
// "X-Internal: <shared secret>" or "?token=..." holds the secret there,
// whatever the name says.
func redactValues(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		if v != "*" {
			v = "[redacted]"
		}
		out[k] = v
	}
	return out
}

// redactURL hides the userinfo and the query of a URL (or of a
// "user:pass@host:port" address), where credentials ride:
// "https://u:p@idp/jwks?token=x" becomes
// "https://[redacted]@idp/jwks?[redacted]".
func redactURL(s string) string {
	if !strings.Contains(s, "://") {
		if at := strings.LastIndexByte(s, '@'); at >= 0 {
			return "[redacted]@" + s[at+1:]
		}
		return s
	}
	u, err := url.Parse(s)
	if err != nil {
		return "[redacted]"
	}
	hadUser, hadQuery := u.User != nil, u.RawQuery != "" || u.ForceQuery
	if !hadUser && !hadQuery && u.Fragment == "" {
		return s
	}
	u.User, u.RawQuery, u.ForceQuery, u.Fragment, u.RawFragment = nil, "", false, "", ""
	out := u.String()
	if hadUser {
		out = strings.Replace(out, "://", "://[redacted]@", 1)
	}
	if hadQuery {
		out += "?[redacted]"
	}
	return out
}

// secretWords mark a header as a credential wherever they occur in its
// name ("X-Upstream-Token", "X-Api-Key"), whatever admin.redact_headers
// says.
var secretWords = []string{"authorization", "cookie", "token", "secret", "password", "key", "credential"}

// headerSet is a set of lower-case header names.
type headerSet map[string]bool

// sensitiveHeaders is admin.redact_headers (config.DefaultRedactHeaders
// for a config that was never defaulted) plus the API key header.
func sensitiveHeaders(cfg *config.Config) headerSet {
	names := cfg.Admin.RedactHeaders
	if names == nil {
		names = config.DefaultRedactHeaders
	}
	set := make(headerSet, len(names)+1)
	for _, n := range names {
		set[strings.ToLower(n)] = true
	}
	if h := cfg.Auth.APIKeys.Header; h != "" {
		set[strings.ToLower(h)] = true
	}
	return set
}

func (s headerSet) sensitive(name string) bool {
	lk := strings.ToLower(name)
	if s[lk] {
		return true
	}
	for _, w := range secretWords {
		if strings.Contains(lk, w) {
			return true
		}
	}
	return false
}

// redact returns a copy of m with the sensitive headers' values replaced.
func (s headerSet) redact(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		if s.sensitive(k) {
			v = "[redacted]"
		}
		out[k] = v
	}
	return out
}

func writeJSON(ctx *fasthttp.RequestCtx, status int, v any) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		status, b = fasthttp.StatusInternalServerError, []byte(`{"error":"could not encode the answer"}`)
	}
	ctx.SetStatusCode(status)
	ctx.SetContentType("application/json")
	ctx.Response.Header.Set("Cache-Control", "no-store")
	// The console shares this origin and its session cookie: an answer
	// opened as a page (a key name with markup in it, say) is never
	// sniffed into HTML, runs nothing and can't be framed.
	ctx.Response.Header.Set("X-Content-Type-Options", "nosniff")
	ctx.Response.Header.Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
	ctx.SetBody(append(b, '\n'))
}

// pprofHandler serves net/http/pprof: the index and named profiles
// (/debug/pprof/heap, /goroutine, ...), CPU profiles
// (/debug/pprof/profile?seconds=N) and traces.
//
// seconds is capped at maxPprofSeconds: under fasthttpadaptor the
// handler sees no server write deadline, so an uncapped profile or trace
// would run (and hold a CPU profiler, which is one per process) for as
// long as it was asked.
func pprofHandler(ctx *fasthttp.RequestCtx) {
	if s := ctx.QueryArgs().Peek("seconds"); s != nil {
		if n, err := strconv.ParseFloat(string(s), 64); err != nil || !(n > 0 && n <= maxPprofSeconds) {
			writeJSON(ctx, fasthttp.StatusBadRequest, map[string]string{"error": "seconds must be a number in (0, " + strconv.Itoa(maxPprofSeconds) + "]"})
			return
		}
	}
	switch ctx.UserValue("path") {
	case "cmdline":
		pprofCmdline(ctx)
	case "profile":
		pprofProfile(ctx)
	case "symbol":
		pprofSymbol(ctx)
	case "trace":
		pprofTrace(ctx)
	default:
		pprofIndex(ctx)
	}
}

const maxPprofSeconds = 60

var (
	pprofIndex   = fasthttpadaptor.NewFastHTTPHandlerFunc(pprof.Index)
	pprofCmdline = fasthttpadaptor.NewFastHTTPHandlerFunc(pprof.Cmdline)
	pprofProfile = fasthttpadaptor.NewFastHTTPHandlerFunc(pprof.Profile)
	pprofSymbol  = fasthttpadaptor.NewFastHTTPHandlerFunc(pprof.Symbol)
	pprofTrace   = fasthttpadaptor.NewFastHTTPHandlerFunc(pprof.Trace)
)
