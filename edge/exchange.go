package edge

import (
	"errors"
	"sync"
	"time"

	"github.com/sluicegw/sluice/edge/auth"
	"github.com/sluicegw/sluice/edge/pathnorm"
	"github.com/sluicegw/sluice/edge/submatch"
	"github.com/sluicegw/sluice/pool"
	"github.com/valyala/fasthttp"
	"go.opentelemetry.io/otel/trace"
)

// exchange is one request on its way through sluice. ServeHTTP takes one
// from a pool, every step gets it as its argument, and it goes back to the
// pool once the request is recorded. What a step learns that a later step,
// the metrics, the access log or the span need is kept here: nothing on
// the request path travels through ctx.UserValue, and sluice never reads
// back a header it set itself.
//
// Ownership: every byte slice here is either the exchange's own (id, path,
// ip) or aliases the RequestCtx and is valid only until ServeHTTP returns
// (query, until the proxy step rewrites the request URI).
type exchange struct {
	exchangeState

	// Scratch, kept across requests and not cleared: each request writes
	// what it reads back, and nothing refers to these once a request ends
	// (the slices above that alias them are cleared with exchangeState).
	idBuf      [maxRequestIDLen]byte
	pathBuf    []byte
	decodedBuf []byte
	ipBuf      [64]byte
	keyBuf     [320]byte          // rate-limit and quota keys: here, not on the stack, since limiters are called through an interface
	originBuf  [maxOriginLen]byte // the allowed Origin, echoed after the request's headers have changed (step_cors.go)
	argBuf     [maxQueryArg]byte  // a query parameter's value, decoded for a route condition (match.go)
	captures   submatch.Scratch   // a regex route's groups for its replace_path (match.go); kept across requests
	cacheKey   []byte             // the request's cache key (step_cache.go); the exchange's own, reset to length 0
	varyKey    []byte             // its variant's key, when the answer varies; reset to length 0
	uriBuf     []byte             // the request target sent upstream, built here (setForwardURI); fasthttp copies it
}

// exchangeState is what one request sets on its exchange, cleared whole
// when it is released: everything but the scratch buffers, so the reset
// zeroes about a quarter of the exchange instead of all of it.
type exchangeState struct {
	ctx   *fasthttp.RequestCtx
	snap  *Snapshot
	route *route // nil until routed
	step  int    // the next of route.steps to run
	// matchMethod is the method the route was matched by: the request's,
	// or for a CORS preflight the method it asks about (findRoute).
	// Aliases the request header.
	matchMethod []byte

	start    time.Time     // when the request head had been read
	id       []byte        // the request id: the client's when valid, else a new one
	path     []byte        // the normalised path: matched, forwarded, logged (the exchange's own)
	rawPath  []byte        // the path as received; aliases the request URI
	pathInfo pathnorm.Info // what normalising met (encoded slashes)
	query    []byte        // the query, without '?'; aliases the request URI

	ip         []byte // the client address (clientip.go); nil until first asked for
	ipDone     bool
	claimsAddr bool     // the request has Forwarded, X-Real-IP or repeated X-Forwarded-* lines (checkHead)
	hopByHop   bool     // the request has a hop-by-hop header (checkHead)
	head       headScan // the raw header block's names, scanned once (checks.go)
	rawHead    bool     // the request came with a raw header block: head is exact

	identity *auth.Identity  // the verified JWT's caller, set by the JWT auth step
	mtls     bool            // a verified client certificate admitted the request (mtls auth step)
	apiKey   *auth.KeyRecord // the API key's record, set by the API key auth step

	// What the proxy step learns, for the metrics, the access log and the span.
	up             *upstream // the route's upstream, or its split's choice
	upstream       string
	target         string
	upstreamTime   time.Duration
	retries        int
	span           trace.Span // nil: not sampled, or no span export
	traceparentSet bool       // the span wrote the outgoing traceparent

	// A streamed answer is recorded when fasthttp has written it
	// (StreamDone), not when ServeHTTP returns.
	streaming bool
	flushing  bool  // the streamed answer is flushed as relayed (step_proxy.go)
	relayed   int64 // body bytes of a streamed answer
	streamErr error // what broke a streamed answer off upstream
}

var exchangePool = sync.Pool{New: func() any { return &exchange{pathBuf: make([]byte, 0, 256)} }}

func acquireExchange(ctx *fasthttp.RequestCtx, s *Snapshot) *exchange {
	x := exchangePool.Get().(*exchange)
	x.ctx, x.snap, x.start = ctx, s, requestTime(ctx)
	return x
}

// releaseExchange clears x's per-request state (so a pooled exchange
// refers to no request's data) and returns it to the pool. Its scratch
// buffers are emptied, not zeroed; one grown by a huge request is
// dropped rather than kept.
func releaseExchange(x *exchange) {
	x.exchangeState = exchangeState{}
	x.pathBuf = x.pathBuf[:0]
	if cap(x.pathBuf) > 4096 {
		x.pathBuf = make([]byte, 0, 256)
	}
	x.decodedBuf = trimScratch(x.decodedBuf)
	x.cacheKey = trimScratch(x.cacheKey)
	x.varyKey = trimScratch(x.varyKey)
	x.uriBuf = trimScratch(x.uriBuf)
	x.captures.Trim()
	exchangePool.Put(x)
}

// trimScratch empties b, dropping it when one request grew it past 4 KiB.
func trimScratch(b []byte) []byte {
	if cap(b) > 4096 {
		return nil
	}
	return b[:0]
}

// StreamRead refreshes the client connection's write deadline while a
// streamed answer moves (pool.StreamWatcher): server.write_timeout bounds
// each write of it, not the whole transfer.
func (x *exchange) StreamRead() {
	if d := x.snap.clientWriteTimeout; d > 0 {
		// Through the ctx: fasthttp then keeps the handler's deadline.
		_ = x.ctx.SetWriteDeadline(time.Now().Add(d))
	}
}

// StreamDone records a streamed answer once fasthttp has written it (or
// given up), then releases the exchange: pool.StreamWatcher.
func (x *exchange) StreamDone(relayed int64, broken error) {
	x.relayed, x.streamErr = relayed, broken
	if broken != nil && errors.Is(broken, pool.ErrResponseTooLarge) {
		x.snap.log.Warn("upstream response over the route's max_response_bytes: stream cut, connection closed",
			"route", x.route.name, "target", x.target, "limit", x.route.maxResponse, "request_id", string(x.id))
	}
	if x.flushing {
		x.snap.res.streams.remove(x)
	}
	x.record()
	releaseExchange(x)
}

// next runs the route's next step; the last step (the proxy) answers.
func (x *exchange) next() {
	if x.step < len(x.route.steps) {
		s := x.route.steps[x.step]
		x.step++
		s.serve(x)
	}
}

// fail answers the request with f (status, JSON body, request id).
func (x *exchange) fail(f *fault) { writeFault(x.ctx, f, x.id) }

// requestTime is when the request's headers had been read: fasthttp
// stamps every request, so reading it again costs no clock call.
func requestTime(ctx *fasthttp.RequestCtx) time.Time {
	if t := ctx.Time(); !t.IsZero() {
		return t
	}
	return time.Now()
}
