package edge

import (
	"bytes"
	"errors"
	"io"
	"strconv"
	"sync"
	"time"

	"github.com/sluicegw/sluice/edge/submatch"
	"github.com/sluicegw/sluice/pool"
	"github.com/valyala/bytebufferpool"
	"github.com/valyala/fasthttp"
)

// proxyStep is the last step of every route: forward to a target of the
// route's pool (forward.go) and relay the answer.
type proxyStep struct {
	s  *Snapshot
	rt *route
}

var _ step = (*proxyStep)(nil)

var (
	errBodyTooLarge = errors.New("edge: request body too large")
	errClientBody   = errors.New("edge: reading the client's request body failed")
)

func (p *proxyStep) serve(x *exchange) {
	s, rt, ctx := p.s, p.rt, x.ctx
	req := &ctx.Request

	// An upgrade to websocket (websocket.go). Upgrade is a hop-by-hop
	// name, so a request without one pays a bool test.
	var wsKey []byte
	if x.hopByHop && wantsWebSocket(&req.Header) {
		if rt.ws == nil {
			x.fail(faultWSNotAllowed)
			return
		}
		key, f := checkUpgrade(req)
		if f != nil {
			x.fail(f)
			if f == faultWSVersion {
				ctx.Response.Header.SetCanonical(headerWSVersion, []byte("13"))
			}
			return
		}
		// Copied: the key aliases the header, which the next lines edit.
		var kb [24]byte
		wsKey = append(kb[:0], key...)
	}

	// Body: reject by declared size first (the route's limit, else the
	// server's), then either hold it whole (small: it is already read, and
	// a buffered body can be sent again) or stream it through a limiter
	// (large or chunked).
	cl := req.Header.ContentLength()
	if cl > rt.maxBody {
		x.fail(faultBodyTooLarge)
		lingerClose(ctx)
		return
	}
	var lim *bodyLimiter
	if req.IsBodyStream() {
		if cl >= 0 && cl <= rt.bufferBody {
			// A small body not all read with the head: read it now, so it
			// can be sent again on a retry. A client that hangs up before
			// sending all of it gets 400, never a shorter body upstream.
			if !readSmallBody(req, cl) {
				x.fail(faultClientBody)
				ctx.SetConnectionClose()
				return
			}
		} else {
			lim = acquireLimiter(ctx.RequestBodyStream(), rt.maxBody, cl, ctx, s.clientReadTimeout)
			// The server keeps ownership of its stream (it drains or closes
			// what is left); replacing it here only changes what is read.
			req.SetBodyStream(lim, cl)
		}
	}

	clientClose := req.Header.ConnectionClose()
	stripHopByHop(&req.Header, x.hopByHop, s.identityHeaders)
	req.Header.ResetConnectionClose()
	req.Header.SetProtocol("HTTP/1.1")
	// The upstream gets the client's headers: no Content-Type the client
	// did not send (fasthttp would add application/octet-stream).
	req.Header.SetNoDefaultContentType(true)
	s.setForwarded(x)
	if !x.traceparentSet {
		propagateTrace(&req.Header, x.mayHave(x.head.traceparent), x.mayHave(x.head.tracestate))
	}
	for _, k := range rt.reqRemove {
		req.Header.DelBytes(k)
	}
	for _, kv := range rt.reqSet {
		req.Header.SetBytesKV(kv[0], kv[1])
	}
	x.uriBuf = setForwardURI(req, rt, x.path, x.query, &x.captures, x.uriBuf[:0])
	if rt.mirror != nil {
		rt.mirror.copy(req)
	}

	up := rt.upstream
	if rt.split != nil {
		up = rt.split.pick(x)
	}
	x.up = up
	var key uint64
	if up.hasher != nil {
		key = up.hasher.hash(x)
	}
	if wsKey != nil {
		p.upgrade(x, wsKey, key)
		return
	}
	f := forward(x, rt, lim, key)
	if lim != nil {
		releaseLimiter(lim)
	}
	if f != nil {
		x.fail(f)
		switch {
		case f == faultCircuitOpen:
			ctx.Response.Header.Set("Retry-After", strconv.Itoa(int((up.pool.RetryAfter()+time.Second-1)/time.Second)))
		case f == faultClientBody:
			ctx.SetConnectionClose() // the client connection is broken already
		case lim != nil:
			// The client's body was not read to its end: the connection
			// can't carry another request.
			lingerClose(ctx)
		}
		return
	}

	resp := &ctx.Response
	if rt.maxResponse > 0 && !p.withinResponseLimit(x, resp) {
		return
	}
	stripResponseHopByHop(&resp.Header)
	appendVia(&resp.Header)
	for _, k := range rt.respRemove {
		resp.Header.DelBytes(k)
	}
	for _, kv := range rt.respSet {
		resp.Header.SetBytesKV(kv[0], kv[1])
	}
	resp.Header.SetCanonical(headerRequestID, x.id)
	if x.retries > 0 {
		resp.Header.SetCanonical(headerRetryCount, smallInt(x.retries))
	}
	if clientClose {
		ctx.SetConnectionClose()
	}
	// A streamed body is relayed after ServeHTTP returns: record the
	// request when it has been written, with its real size and whether the
	// upstream broke it off.
	if resp.IsBodyStream() {
		// An event stream (or any answer of a streaming route) reaches the
		// client as the upstream writes it: the head is flushed before the
		// first body byte is waited for, and fasthttp flushes each chunk
		// of a body of unknown length (all event streams in practice) as
		// it is relayed. Only streamed answers are looked at, so the
		// buffered path pays nothing.
		if rt.streaming || isEventStream(resp.Header.ContentType()) {
			resp.ImmediateHeaderFlush = true
			// Bounded per piece (StreamRead), not as a whole.
			x.flushing = s.clientWriteTimeout > 0 && ctx.SetWriteDeadline(time.Now().Add(s.clientWriteTimeout)) == nil
		}
		if pool.WatchStream(resp, x) {
			x.streaming = true
			if x.flushing {
				s.res.streams.add(x, pool.Stopper(resp))
			}
		}
	}
}

var eventStream = []byte("text/event-stream")

// isEventStream: the media type is text/event-stream (HTML, server-sent
// events), parameters aside, in any case (RFC 9110 8.3.1).
func isEventStream(ct []byte) bool {
	return len(ct) >= len(eventStream) && bytes.EqualFold(ct[:len(eventStream)], eventStream) &&
		(len(ct) == len(eventStream) || ct[len(eventStream)] == ';' || ct[len(eventStream)] == ' ')
}

var headerRetryCount = []byte("X-Retry-Count")

// withinResponseLimit enforces routes[].max_response_bytes: an answer
// known to be larger (buffered, or declaring its length) is replaced by a
// 502; a streamed one of unknown length is cut at the limit as it is
// relayed (pool.LimitStream), which closes the client's connection, since
// its status line has gone by then.
func (p *proxyStep) withinResponseLimit(x *exchange, resp *fasthttp.Response) bool {
	size, limit := -1, p.rt.maxResponse
	switch {
	case !resp.IsBodyStream():
		size = len(resp.Body())
	case resp.Header.ContentLength() > limit:
		size = resp.Header.ContentLength()
	default:
		pool.LimitStream(resp, int64(limit))
	}
	if size <= limit {
		return true
	}
	x.snap.log.Warn("upstream response over the route's max_response_bytes: answered 502",
		"route", p.rt.name, "target", x.target, "bytes", size, "limit", limit, "request_id", string(x.id))
	x.fail(faultResponseLarge) // closes a streamed body: its connection is not reused
	return false
}

// setForwardURI sets the origin-form request target sent upstream: the
// normalised path the route matched, or its rewrite, plus the query as sent.
// query may alias the request URI: it is copied before the URI is set.
// sc is the exchange's scratch for a template's regex groups, b its
// buffer the URI is built in (returned, grown).
func setForwardURI(req *fasthttp.Request, rt *route, path, query []byte, sc *submatch.Scratch, b []byte) []byte {
	switch {
	case rt.pathTemplate != nil:
		b = appendTemplatePath(b, rt, path, sc)
	case rt.replacePath != nil:
		b = append(b, rt.replacePath...)
	default:
		p := path
		if rt.stripPrefix != nil && len(p) >= len(rt.stripPrefix) && string(p[:len(rt.stripPrefix)]) == string(rt.stripPrefix) {
			p = p[len(rt.stripPrefix):]
		}
		b = append(b, rt.addPrefix...)
		if len(p) == 0 || p[0] != '/' {
			b = append(b, '/')
		}
		b = append(b, p...)
	}
	if len(query) > 0 {
		b = append(b, '?')
		b = append(b, query...)
	}
	// Copies b; setting the raw URI also makes fasthttp write it as it is
	// instead of re-encoding a parsed one.
	req.SetRequestURIBytes(b)
	return b
}

// readSmallBody reads a streamed body of known length n into the request.
// fasthttp's Request.Body would do it too, but it logs a warning each time
// and, when the read fails, silently makes the error text the body.
func readSmallBody(req *fasthttp.Request, n int) bool {
	buf := bytebufferpool.Get()
	defer bytebufferpool.Put(buf)
	err := req.BodyWriteTo(buf) // reads the stream to its end and closes it
	if err != nil || len(buf.B) != n {
		return false
	}
	req.SetBody(buf.B)
	return true
}

// bodyLimiter passes a streamed request body through, failing once more
// than max bytes have come, and remembers whether a failure was the
// client's (so it is not blamed on the upstream).
type bodyLimiter struct {
	r         io.Reader
	left      int // bytes still allowed by the limit
	expect    int // declared Content-Length, or -1 for chunked
	read      int
	tooLarge  bool
	clientErr error
	// The client's request and server.read_timeout: the deadline is
	// refreshed per read, so an upload that keeps moving is not cut off
	// (fasthttp sets it once per request). Through the ctx, as
	// exchange.StreamRead does for writes: fasthttp then clears it after
	// the request.
	ctx     *fasthttp.RequestCtx
	timeout time.Duration
}

var limiterPool = sync.Pool{New: func() any { return new(bodyLimiter) }}

func acquireLimiter(r io.Reader, max, contentLength int, ctx *fasthttp.RequestCtx, timeout time.Duration) *bodyLimiter {
	l := limiterPool.Get().(*bodyLimiter)
	l.r, l.left, l.expect, l.ctx, l.timeout = r, max, contentLength, ctx, timeout
	return l
}

func releaseLimiter(l *bodyLimiter) {
	if l == nil {
		return
	}
	*l = bodyLimiter{}
	limiterPool.Put(l)
}

func (l *bodyLimiter) Read(p []byte) (int, error) {
	if l.timeout > 0 {
		_ = l.ctx.SetReadDeadline(time.Now().Add(l.timeout))
	}
	if len(p) > l.left+1 {
		p = p[:l.left+1] // one byte past the limit is enough to know
	}
	n, err := l.r.Read(p)
	if n > l.left || errors.Is(err, errBodyTooLarge) {
		// Over the limit, here or in a limiter below this one (the
		// compressed input of a decoded body, step_decompress.go).
		l.tooLarge = true
		return 0, errBodyTooLarge
	}
	l.left -= n
	l.read += n
	if err == io.EOF && l.expect >= 0 && l.read < l.expect {
		err = io.ErrUnexpectedEOF // the client hung up before sending it all
	}
	if err != nil && err != io.EOF {
		l.clientErr = err
		return n, errClientBody
	}
	return n, err
}

// streams are the flushed streams (event streams, streaming routes) being
// relayed now: long-lived by nature, so Shutdown ends them (cleanly, as if
// the upstream had finished: an event source reconnects) instead of
// waiting for them until its deadline.
type streams struct {
	mu      sync.Mutex
	m       map[*exchange]pool.StreamStopper
	stopped bool // shutting down: a stream starting now ends at once
}

func (r *streams) add(x *exchange, s pool.StreamStopper) {
	if s == nil {
		return
	}
	r.mu.Lock()
	if r.m == nil {
		r.m = map[*exchange]pool.StreamStopper{}
	}
	r.m[x] = s
	if r.stopped {
		s.Stop()
	}
	r.mu.Unlock()
}

// remove is called from StreamDone, before the stream can be reused.
func (r *streams) remove(x *exchange) {
	r.mu.Lock()
	delete(r.m, x)
	r.mu.Unlock()
}

// stopAll ends every stream being relayed.
func (r *streams) stopAll() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stopped = true
	for _, s := range r.m {
		s.Stop()
	}
}
