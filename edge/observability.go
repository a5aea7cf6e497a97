package edge

import (
	"time"

	"github.com/sluicegw/sluice/edge/observe"
	"github.com/sluicegw/sluice/pool"
	"github.com/valyala/fasthttp"
)

// record records an answered request: metrics always, then the span and
// the access log line when they are on. A streamed answer that broke off
// upstream counts as an upstream error.
func (x *exchange) record() {
	ctx, res := x.ctx, x.snap.res
	d := time.Since(x.start)
	code := ctx.Response.StatusCode()
	m := x.snap.noRouteMetrics
	if x.route != nil {
		m = x.route.metrics
	}
	m.Observe(ctx.Method(), code, d)
	if x.streamErr != nil && x.up != nil {
		x.up.metrics.Error(uint8(pool.Classify(x.streamErr)))
	}
	if x.span != nil {
		res.tracer.end(x, code)
	}
	if log := res.accessLog; log != nil && (log.Sampled(code) || x.streamErr != nil) {
		var e observe.Entry
		x.logEntry(&e, d, code)
		log.Log(&e)
	}
}

// logEntry fills e with the access log line for x. It aliases the
// exchange and the RequestCtx: Log formats the line before it returns.
func (x *exchange) logEntry(e *observe.Entry, d time.Duration, code int) {
	ctx := x.ctx
	*e = observe.Entry{
		Time:             x.start,
		RequestID:        x.id,
		TraceID:          traceID(ctx.Request.Header.PeekBytes(headerTraceparent)),
		ClientIP:         x.clientIP(),
		Method:           ctx.Method(),
		Path:             x.path,
		Upstream:         x.upstream,
		Target:           x.target,
		Status:           code,
		BytesIn:          bytesIn(&ctx.Request.Header),
		BytesOut:         x.bytesOut(),
		Duration:         d,
		UpstreamDuration: x.upstreamTime,
		Retries:          x.retries,
	}
	if x.route != nil {
		e.Route = x.route.name
	}
	if x.streamErr != nil {
		e.UpstreamError = "response body broke off"
	}
	if x.identity != nil {
		e.User = x.identity.Subject
	}
	if x.apiKey != nil {
		e.APIKeyID = x.apiKey.ID
	}
}

// bytesIn is the request body's declared size: 0 for a request without
// Content-Length or Transfer-Encoding (fasthttp's -2, "identity", which
// for a request means no body), -1 for a chunked one.
func bytesIn(h *fasthttp.RequestHeader) int64 {
	switch cl := h.ContentLength(); {
	case cl >= 0:
		return int64(cl)
	case cl == -2:
		return 0
	}
	return -1
}

// bytesOut is the response body's size: for a streamed answer, the bytes
// relayed (known once it was written).
func (x *exchange) bytesOut() int64 {
	r := &x.ctx.Response
	switch {
	case x.streaming:
		return x.relayed
	case r.IsBodyStream():
		return max(int64(r.Header.ContentLength()), -1)
	}
	return int64(len(r.Body()))
}

// traceID is the trace id of a valid traceparent, else nil.
func traceID(tp []byte) []byte {
	if !validTraceparent(tp) {
		return nil
	}
	return tp[3:35]
}

// Metrics is the gateway's metrics (for the admin listener).
func (g *Gateway) Metrics() *observe.Metrics { return g.res.metrics }

// ReopenAccessLog reopens the access log file (SIGUSR1, after logrotate).
func (g *Gateway) ReopenAccessLog() error {
	if g.res.accessLog == nil {
		return nil
	}
	return g.res.accessLog.Reopen()
}

// metricsState is what the scrape-time collector reads.
func (g *Gateway) metricsState() observe.State {
	snap := g.snap.Load()
	st := observe.State{RetryBudgetDenied: map[string]int64{}, RedisFallback: g.res.redisFallback()}
	for _, l := range g.tls {
		for _, c := range l.certs.Load().certs {
			name := c.Leaf.Subject.CommonName
			if len(c.Leaf.DNSNames) > 0 {
				name = c.Leaf.DNSNames[0]
			}
			st.Certificates = append(st.Certificates, observe.CertificateState{Listener: l.name, Name: name, NotAfter: c.Leaf.NotAfter})
		}
		set := l.certs.Load()
		for _, host := range set.acmeHosts { // obtained ones only (acme.go)
			if na, ok := set.acme.notAfter(host); ok {
				st.Certificates = append(st.Certificates, observe.CertificateState{Listener: l.name, Name: host, NotAfter: na})
			}
		}
	}
	if snap == nil {
		return st
	}
	for name, up := range snap.upstreams {
		st.RetryBudgetDenied[name] = up.pool.Budget.Denied()
		for _, t := range up.pool.Targets {
			ts := observe.TargetState{
				Upstream: name, Target: t.URL, InFlight: t.InFlight(),
				Usable: t.Usable(),
			}
			if t.HasCircuit() {
				ts.HasBreaker, ts.CircuitState, ts.CircuitTrips = true, uint32(t.CircuitState()), t.CircuitTrips()
			}
			st.Targets = append(st.Targets, ts)
		}
	}
	for _, rt := range snap.routes {
		if m := rt.mirror; m != nil {
			st.Mirrors = append(st.Mirrors, observe.MirrorState{Route: rt.name, Sent: m.sent.Load(), Dropped: m.dropped.Load(), Skipped: m.skipped.Load()})
		}
	}
	return st
}
