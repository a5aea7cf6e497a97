package edge

import (
	"encoding/json"

	"github.com/valyala/fasthttp"
)

// serveBuiltin answers the data-plane endpoints sluice serves itself, before
// routing: GET /services/health (server.services_health) and the metrics
// (metrics.data_plane_path), and ACME HTTP-01 challenges on the plain
// listener (acme.go; before the HTTPS redirect, which serve applies after
// this). It reports whether it answered.
func (g *Gateway) serveBuiltin(x *exchange) bool {
	s, h := x.snap, &x.ctx.Request.Header
	if !h.IsGet() {
		return false
	}
	if g.serveACMEChallenge(x) {
		return true
	}
	switch {
	case s.servicesHealth && string(x.path) == "/services/health":
		g.servicesHealth(x.ctx)
	case s.metricsPath != "" && string(x.path) == s.metricsPath:
		g.res.metrics.Handler(x.ctx)
	default:
		return false
	}
	return true
}

// servicesHealth answers the public GET /services/health (seed 001): the
// gateway's view of its upstreams. 200 when every upstream has a usable
// target, 503 otherwise.
func (g *Gateway) servicesHealth(ctx *fasthttp.RequestCtx) {
	ups := g.UpstreamStatus()
	status, code := "ok", fasthttp.StatusOK
	for _, u := range ups {
		if u.Usable == 0 {
			status, code = "degraded", fasthttp.StatusServiceUnavailable
		}
	}
	b, _ := json.Marshal(map[string]any{"status": status, "upstreams": ups})
	ctx.Response.Reset()
	ctx.SetStatusCode(code)
	ctx.SetContentType("application/json")
	ctx.Response.Header.Set("Cache-Control", "no-store")
	ctx.SetBody(append(b, '\n'))
}
