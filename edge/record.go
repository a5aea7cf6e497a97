package edge

import (
	"sync"
	"time"

	"github.com/sluicegw/sluice/edge/auth"
	"github.com/sluicegw/sluice/edge/observe"
	"github.com/valyala/fasthttp"
	"go.opentelemetry.io/otel/trace"
)

// requestRecord is what the access log and the span need to know about a
// request beyond the RequestCtx: facts the proxy step learns (upstream,
// target, time spent upstream, retries) and the path as received (the
// proxy rewrites the request URI). It exists only when the access log or
// span export is on, comes from a pool, and travels as a user value.
type requestRecord struct {
	path           []byte
	upstream       string
	target         string
	upstreamTime   time.Duration
	retries        int
	span           trace.Span // nil: not sampled, or no export
	traceparentSet bool       // the span wrote the outgoing traceparent
}

const userValueRecord = "sluice.record"

var recordPool = sync.Pool{New: func() any { return &requestRecord{path: make([]byte, 0, 128)} }}

func acquireRecord(ctx *fasthttp.RequestCtx) *requestRecord {
	r := recordPool.Get().(*requestRecord)
	path, _ := splitURI(ctx.Request.Header.RequestURI())
	r.path = append(r.path[:0], path...)
	ctx.SetUserValue(userValueRecord, r)
	return r
}

func recordOf(ctx *fasthttp.RequestCtx) *requestRecord {
	r, _ := ctx.UserValue(userValueRecord).(*requestRecord)
	return r
}

func releaseRecord(ctx *fasthttp.RequestCtx, r *requestRecord) {
	ctx.RemoveUserValue(userValueRecord)
	path := r.path
	if cap(path) > 4096 {
		path = make([]byte, 0, 128)
	}
	*r = requestRecord{path: path[:0]}
	recordPool.Put(r)
}

// requestTime is when the request's headers had been read: fasthttp
// stamps every request, so reading it again costs no clock call.
func requestTime(ctx *fasthttp.RequestCtx) time.Time {
	if t := ctx.Time(); !t.IsZero() {
		return t
	}
	return time.Now()
}

// finish records an answered request: metrics always, then the span and
// the access log line when they are on.
func (g *Gateway) finish(ctx *fasthttp.RequestCtx, s *Snapshot, rt *Route, rec *requestRecord, start time.Time) {
	d := time.Since(start)
	code := ctx.Response.StatusCode()
	m := s.noRouteMetrics
	if rt != nil {
		m = rt.metrics
	}
	m.Observe(ctx.Method(), code, d)
	if rec == nil {
		return
	}
	if rec.span != nil {
		g.tracer.end(ctx, rt, rec, code)
	}
	if g.accessLog != nil && g.accessLog.Sampled(code) {
		g.logRequest(ctx, s, rt, rec, start, d, code)
	}
	releaseRecord(ctx, rec)
}

func (g *Gateway) logRequest(ctx *fasthttp.RequestCtx, s *Snapshot, rt *Route, rec *requestRecord, start time.Time, d time.Duration, code int) {
	var ipBuf [64]byte
	e := observe.Entry{
		Time:             start,
		RequestID:        ctx.Request.Header.PeekBytes(headerRequestID),
		TraceID:          traceID(ctx.Request.Header.PeekBytes(headerTraceparent)),
		ClientIP:         s.clientIP(ctx, ipBuf[:0]),
		Method:           ctx.Method(),
		Path:             rec.path,
		Upstream:         rec.upstream,
		Target:           rec.target,
		Status:           code,
		BytesIn:          bytesIn(&ctx.Request.Header),
		BytesOut:         bytesOut(&ctx.Response),
		Duration:         d,
		UpstreamDuration: rec.upstreamTime,
		Retries:          rec.retries,
	}
	if rt != nil {
		e.Route = rt.Name
	}
	if id, ok := ctx.UserValue(userValueIdentity).(*auth.Identity); ok {
		e.User = id.Subject
	}
	if k, ok := ctx.UserValue(userValueAPIKey).(*auth.KeyRecord); ok {
		e.APIKeyID = k.ID
	}
	g.accessLog.Log(&e)
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

// bytesOut is the response body's size when it is known now: a streamed
// body is sent after the handler returns, so only its declared length is.
func bytesOut(r *fasthttp.Response) int64 {
	if r.IsBodyStream() {
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

// serveMetrics answers /metrics on the data plane (metrics.data_plane_path).
func (g *Gateway) serveMetrics(ctx *fasthttp.RequestCtx) {
	g.metrics.Handler(ctx)
}

// Metrics is the gateway's metrics (for the admin listener).
func (g *Gateway) Metrics() *observe.Metrics { return g.metrics }

// ReopenAccessLog reopens the access log file (SIGUSR1, after logrotate).
func (g *Gateway) ReopenAccessLog() error {
	if g.accessLog == nil {
		return nil
	}
	return g.accessLog.Reopen()
}

// closeObservers flushes the access log and the span exporter.
func (g *Gateway) closeObservers() {
	if g.accessLog != nil {
		g.accessLog.Close()
	}
	if g.tracer != nil {
		g.tracer.close()
	}
}

// metricsState is what the scrape-time collector reads.
func (g *Gateway) metricsState() observe.State {
	snap := g.snap.Load()
	st := observe.State{RetryBudgetDenied: map[string]int64{}, RedisFallback: g.RedisFallback()}
	if snap == nil {
		return st
	}
	for name, up := range snap.Upstreams {
		st.RetryBudgetDenied[name] = up.Pool.Budget.Denied()
		for _, t := range up.Pool.Targets {
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
	return st
}
