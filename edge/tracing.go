package edge

import (
	"context"
	"encoding/hex"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"time"

	"github.com/sluicegw/sluice/edge/config"
	"github.com/valyala/fasthttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// tracer exports one server span per sampled request through the
// OpenTelemetry SDK's batch processor and OTLP/HTTP exporter.
//
// The sampling decision is made here, before the SDK is called, so an
// unsampled request costs no allocation: a request whose traceparent says
// "sampled" is recorded, one that says "not sampled" is not (parent-based,
// as the W3C flags ask), and a new trace is recorded with probability
// tracing.sample. The SDK then records every span it is given.
type tracer struct {
	provider *sdktrace.TracerProvider
	tracer   trace.Tracer
	sample   float64
	log      *slog.Logger
}

func newTracer(c config.Tracing, version string, log *slog.Logger) (*tracer, error) {
	endpoint := c.OTLPEndpoint
	if u, err := url.Parse(endpoint); err == nil && (u.Path == "" || u.Path == "/") {
		endpoint = u.Scheme + "://" + u.Host + "/v1/traces"
	}
	// New does not connect; export errors are reported per batch.
	exp, err := otlptracehttp.New(context.Background(), otlptracehttp.WithEndpointURL(endpoint))
	if err != nil {
		return nil, fmt.Errorf("tracing.otlp_endpoint: %w", err)
	}
	res := resource.NewSchemaless(
		attribute.String("service.name", c.ServiceName),
		attribute.String("service.version", version),
	)
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithResource(res),
		sdktrace.WithSampler(sdktrace.AlwaysSample()), // decided in startSpan
		sdktrace.WithBatcher(exp, sdktrace.WithBatchTimeout(time.Second), sdktrace.WithMaxQueueSize(8192)),
	)
	return &tracer{provider: tp, tracer: tp.Tracer("github.com/sluicegw/sluice/edge"), sample: *c.Sample, log: log}, nil
}

// startSpan starts the route's span when the request is sampled, and
// writes the outgoing traceparent naming that span as the upstream's
// parent.
func (g *Gateway) startSpan(ctx *fasthttp.RequestCtx, rt *Route, rec *requestRecord) {
	t := g.tracer
	if t == nil {
		return
	}
	h := &ctx.Request.Header
	in := h.PeekBytes(headerTraceparent)
	parent := context.Background()
	switch {
	case validTraceparent(in):
		if hexNibble(in[54])&1 == 0 { // flags: the last hex digit's low bit is "sampled"
			return // the caller decided: not sampled
		}
		var sc trace.SpanContextConfig
		_, _ = hex.Decode(sc.TraceID[:], in[3:35])
		_, _ = hex.Decode(sc.SpanID[:], in[36:52])
		sc.TraceFlags = trace.FlagsSampled
		sc.Remote = true
		if ts := h.PeekBytes(headerTracestate); len(ts) > 0 {
			if state, err := trace.ParseTraceState(string(ts)); err == nil {
				sc.TraceState = state
			}
		}
		parent = trace.ContextWithRemoteSpanContext(parent, trace.NewSpanContext(sc))
	default:
		if t.sample <= 0 || rand.Float64() >= t.sample {
			return
		}
		h.DelBytes(headerTracestate) // a new trace has no state
	}
	_, span := t.tracer.Start(parent, rt.Name, trace.WithSpanKind(trace.SpanKindServer),
		trace.WithTimestamp(time.Now()))
	sc := span.SpanContext()
	var tp [traceparentLen]byte
	copy(tp[:], "00-")
	tid := sc.TraceID()
	hex.Encode(tp[3:35], tid[:])
	tp[35] = '-'
	sid := sc.SpanID()
	hex.Encode(tp[36:52], sid[:])
	copy(tp[52:], "-01")
	h.SetCanonical(headerTraceparent, tp[:])
	rec.span, rec.traceparentSet = span, true
}

// hexNibble is the value of a lower-case hex digit.
func hexNibble(c byte) byte {
	if c >= 'a' {
		return c - 'a' + 10
	}
	return c - '0'
}

// end finishes a request's span with what happened.
func (t *tracer) end(ctx *fasthttp.RequestCtx, rt *Route, rec *requestRecord, code int) {
	attrs := []attribute.KeyValue{
		attribute.String("http.request.method", string(ctx.Method())),
		attribute.String("url.path", string(rec.path)),
		attribute.Int("http.response.status_code", code),
		attribute.String("http.request.header.x-request-id", string(ctx.Request.Header.PeekBytes(headerRequestID))),
		attribute.String("client.address", ctx.RemoteIP().String()),
	}
	if rt != nil {
		attrs = append(attrs, attribute.String("sluice.route", rt.Name))
	}
	if rec.upstream != "" {
		attrs = append(attrs,
			attribute.String("sluice.upstream", rec.upstream),
			attribute.String("sluice.target", rec.target),
			attribute.Int("sluice.retries", rec.retries),
			attribute.Float64("sluice.upstream_ms", float64(rec.upstreamTime.Microseconds())/1000),
		)
	}
	rec.span.SetAttributes(attrs...)
	if code >= 500 {
		rec.span.SetStatus(codes.Error, fmt.Sprintf("HTTP %d", code))
	}
	rec.span.End()
}

// close flushes spans not yet exported (bounded: the exporter's own
// timeout, at most 5 s).
func (t *tracer) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := t.provider.Shutdown(ctx); err != nil {
		t.log.Warn("tracing: flushing spans at shutdown failed", "error", err.Error())
	}
}
