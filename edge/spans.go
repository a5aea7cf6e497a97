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
func (g *Gateway) startSpan(x *exchange) {
	t := g.res.tracer
	if t == nil {
		return
	}
	h := &x.ctx.Request.Header
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
	_, span := t.tracer.Start(parent, x.route.name, trace.WithSpanKind(trace.SpanKindServer),
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
	x.span, x.traceparentSet = span, true
}

// hexNibble is the value of a lower-case hex digit.
func hexNibble(c byte) byte {
	if c >= 'a' {
		return c - 'a' + 10
	}
	return c - '0'
}

// end finishes a request's span with what happened.
func (t *tracer) end(x *exchange, code int) {
	attrs := []attribute.KeyValue{
		attribute.String("http.request.method", string(x.ctx.Method())),
		attribute.String("url.path", string(x.path)),
		attribute.Int("http.response.status_code", code),
		attribute.String("http.request.header.x-request-id", string(x.id)),
		attribute.String("client.address", string(x.clientIP())), // trusted-proxy aware, as in the access log
	}
	if x.route != nil {
		attrs = append(attrs, attribute.String("sluice.route", x.route.name))
	}
	if x.upstream != "" {
		attrs = append(attrs,
			attribute.String("sluice.upstream", x.upstream),
			attribute.String("sluice.target", x.target),
			attribute.Int("sluice.retries", x.retries),
			attribute.Float64("sluice.upstream_ms", float64(x.upstreamTime.Microseconds())/1000),
		)
	}
	x.span.SetAttributes(attrs...)
	if code >= 500 {
		x.span.SetStatus(codes.Error, fmt.Sprintf("HTTP %d", code))
	}
	x.span.End()
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
