package observe

import (
	"bytes"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttpadaptor"
)

// Handler answers a scrape: the Prometheus text (or OpenMetrics, as
// negotiated) from promhttp, or JSON when the client asks for
// application/json.
func Handler(g prometheus.Gatherer) fasthttp.RequestHandler {
	text := fasthttpadaptor.NewFastHTTPHandler(promhttp.HandlerFor(g, promhttp.HandlerOpts{}))
	return func(ctx *fasthttp.RequestCtx) { serve(ctx, g, text) }
}

func serve(ctx *fasthttp.RequestCtx, g prometheus.Gatherer, text fasthttp.RequestHandler) {
	if bytes.Contains(ctx.Request.Header.Peek("Accept"), []byte("application/json")) {
		ctx.SetContentType("application/json")
		ctx.Response.Header.Set("Cache-Control", "no-store")
		if err := WriteJSON(ctx, g); err != nil {
			ctx.ResetBody()
			ctx.SetStatusCode(fasthttp.StatusInternalServerError)
			ctx.SetBodyString(`{"error":"gathering metrics failed"}` + "\n")
		}
		return
	}
	text(ctx)
}
