package admin

import (
	"context"
	"embed"
	"io"
	"io/fs"
	"mime"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"

	"github.com/fasthttp/router"
	"github.com/valyala/fasthttp"
)

// The web console: static files embedded in the binary (ui/), served at
// /ui/ with no build step and nothing fetched from elsewhere. The page
// reads the JSON admin API (with the session cookie) and calls it with
// the session's CSRF token; the endpoints below are what it needs beyond
// that API.
//
//go:embed ui
var uiFiles embed.FS

// consoleCSP keeps the console's page to its own files: no inline script
// or style, no other origin, no framing (clickjacking), no <base> or form
// posting elsewhere.
const consoleCSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
	"object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// promTimeout bounds one proxied Prometheus query.
const promTimeout = 20 * time.Second

// promMaxBody bounds the answer relayed from Prometheus.
const promMaxBody = 16 << 20

// promMaxInFlight bounds the queries proxied at once: each may hold up
// to promMaxBody in memory for promTimeout.
const promMaxInFlight = 4

func consoleRoutes(r *router.Router, h Hooks) {
	files, _ := fs.Sub(uiFiles, "ui") // ui is embedded: never fails
	promURL := func() string {
		if h.PrometheusURL == nil {
			return ""
		}
		return h.PrometheusURL()
	}
	// Redirects are not followed: prometheus_url names the Prometheus to
	// ask, and a 3xx (a login page, another host) is answered as 502.
	client := &http.Client{Timeout: promTimeout, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	inFlight := make(chan struct{}, promMaxInFlight)
	// One catch-all: the router does not match an empty catch-all (/ui/)
	// beside static siblings, so the console's API is dispatched here.
	r.GET("/ui/{path:*}", func(ctx *fasthttp.RequestCtx) {
		name, _ := ctx.UserValue("path").(string)
		switch {
		case name == "api/features":
			writeJSON(ctx, fasthttp.StatusOK, map[string]bool{"prometheus": promURL() != ""})
		case name == "api/prom/query" || name == "api/prom/query_range":
			base := promURL()
			if base == "" {
				writeJSON(ctx, fasthttp.StatusNotFound, map[string]string{"error": "no Prometheus configured: set admin.prometheus_url"})
				return
			}
			select {
			case inFlight <- struct{}{}:
				defer func() { <-inFlight }()
			default:
				ctx.Response.Header.Set("Retry-After", "1")
				writeJSON(ctx, fasthttp.StatusServiceUnavailable, map[string]string{"error": "too many Prometheus queries in flight: try again"})
				return
			}
			promProxy(ctx, client, base, strings.TrimPrefix(name, "api/prom/"))
		case strings.HasPrefix(name, "api/"):
			writeJSON(ctx, fasthttp.StatusNotFound, map[string]string{"error": "not found"})
		default:
			serveFile(ctx, files, name)
		}
	})
}

// serveFile answers with one of the console's files (index.html for the
// directory itself), under the console's CSP and anti-framing headers.
func serveFile(ctx *fasthttp.RequestCtx, files fs.FS, name string) {
	if name == "" {
		name = "index.html"
	}
	data, err := fs.ReadFile(files, path.Clean(name))
	if err != nil {
		writeJSON(ctx, fasthttp.StatusNotFound, map[string]string{"error": "not found"})
		return
	}
	hdr := &ctx.Response.Header
	hdr.Set("Content-Security-Policy", consoleCSP)
	hdr.Set("X-Frame-Options", "DENY")
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("Referrer-Policy", "no-referrer")
	hdr.Set("Cross-Origin-Opener-Policy", "same-origin")
	hdr.Set("Cache-Control", "no-cache")
	ct := mime.TypeByExtension(path.Ext(name))
	if ct == "" {
		ct = "application/octet-stream"
	}
	ctx.SetContentType(ct)
	ctx.SetBody(data)
}

// promProxy relays one query to Prometheus's HTTP API
// (/api/v1/query or /api/v1/query_range), passing on only the query's own
// parameters, and answers with Prometheus's status and JSON.
func promProxy(ctx *fasthttp.RequestCtx, client *http.Client, base, kind string) {
	q := url.Values{}
	for _, p := range []string{"query", "time", "start", "end", "step", "timeout"} {
		if v := ctx.QueryArgs().Peek(p); len(v) > 0 {
			q.Set(p, string(v))
		}
	}
	if q.Get("query") == "" {
		writeJSON(ctx, fasthttp.StatusBadRequest, map[string]string{"error": "query is required"})
		return
	}
	// Bounded by the client's timeout. (A RequestCtx's Done is the
	// server's shutdown, not this request's end.)
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, strings.TrimSuffix(base, "/")+"/api/v1/"+kind+"?"+q.Encode(), nil)
	if err != nil {
		writeJSON(ctx, fasthttp.StatusInternalServerError, map[string]string{"error": "bad Prometheus URL"})
		return
	}
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		writeJSON(ctx, fasthttp.StatusBadGateway, map[string]string{"error": "Prometheus did not answer: " + err.Error()})
		return
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, promMaxBody+1))
	switch {
	case err != nil:
		writeJSON(ctx, fasthttp.StatusBadGateway, map[string]string{"error": "reading Prometheus's answer: " + err.Error()})
		return
	case len(body) > promMaxBody:
		writeJSON(ctx, fasthttp.StatusBadGateway, map[string]string{"error": "Prometheus's answer is over 16 MiB: narrow the query"})
		return
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		// Passed on, the console would take it for its own session's end.
		writeJSON(ctx, fasthttp.StatusBadGateway, map[string]string{"error": "Prometheus refused the query (" + resp.Status + "): check its access for admin.prometheus_url"})
		return
	case !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json"):
		writeJSON(ctx, fasthttp.StatusBadGateway, map[string]string{"error": "Prometheus answered " + resp.Status + " without JSON"})
		return
	}
	ctx.SetStatusCode(resp.StatusCode)
	ctx.SetContentType("application/json")
	ctx.Response.Header.Set("Cache-Control", "no-store")
	ctx.Response.Header.Set("X-Content-Type-Options", "nosniff")
	ctx.Response.Header.Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
	ctx.SetBody(body)
}
