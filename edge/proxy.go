package edge

import (
	"errors"
	"io"
	"strconv"
	"sync"
	"time"

	"github.com/sluicegw/sluice/pool"

	"github.com/valyala/bytebufferpool"
	"github.com/valyala/fasthttp"
)

// proxyHandler is the last step of every route: forward to a target of the
// route's pool and relay the answer.
func (s *Snapshot) proxyHandler(rt *Route) fasthttp.RequestHandler {
	return func(ctx *fasthttp.RequestCtx) { s.proxy(ctx, rt) }
}

var (
	errBodyTooLarge = errors.New("edge: request body too large")
	errClientBody   = errors.New("edge: reading the client's request body failed")
)

func (s *Snapshot) proxy(ctx *fasthttp.RequestCtx, rt *Route) {
	req := &ctx.Request
	// Valid until the handler returns: set by ServeHTTP, never rewritten.
	rid := req.Header.PeekBytes(headerRequestID)

	// Body: reject by declared size first, then either hold it whole (small:
	// it is already read, and a buffered body can be sent again) or stream
	// it through a limiter (large or chunked).
	cl := req.Header.ContentLength()
	if cl > s.maxBodyBytes {
		writeFault(ctx, faultBodyTooLarge, rid)
		lingerClose(ctx)
		return
	}
	var lim *bodyLimiter
	if req.IsBodyStream() {
		if cl >= 0 && cl <= s.bufferBodyBytes {
			_ = req.Body()
		} else {
			lim = acquireLimiter(ctx.RequestBodyStream(), s.maxBodyBytes, cl)
			// The server keeps ownership of its stream (it drains or closes
			// what is left); replacing it here only changes what is read.
			req.SetBodyStream(lim, cl)
		}
	}

	clientClose := req.Header.ConnectionClose()
	stripRequestHopByHop(&req.Header)
	req.Header.ResetConnectionClose()
	req.Header.SetProtocol("HTTP/1.1")
	s.setForwarded(ctx)
	var rec *requestRecord
	if s.recording {
		rec = recordOf(ctx)
	}
	if rec == nil || !rec.traceparentSet {
		propagateTrace(&req.Header)
	}
	for _, k := range rt.reqRemove {
		req.Header.DelBytes(k)
	}
	for _, kv := range rt.reqSet {
		req.Header.SetBytesKV(kv[0], kv[1])
	}
	setForwardURI(req, rt)

	up := rt.upstream
	var key uint64
	if up.Pool.HashesKey {
		key = s.hashKey(ctx, up)
	}
	fault, retries := s.forward(ctx, rt, lim, key, rec)
	if lim != nil {
		releaseLimiter(lim)
	}
	if fault != nil {
		writeFault(ctx, fault, rid)
		switch {
		case fault == faultCircuitOpen:
			ctx.Response.Header.Set("Retry-After", strconv.Itoa(int((up.Pool.RetryAfter()+time.Second-1)/time.Second)))
		case fault == faultClientBody:
			ctx.SetConnectionClose() // the client connection is broken already
		case lim != nil:
			// The client's body was not read to its end: the connection
			// can't carry another request.
			lingerClose(ctx)
		}
		return
	}

	resp := &ctx.Response
	stripResponseHopByHop(&resp.Header)
	appendVia(&resp.Header)
	for _, k := range rt.respRemove {
		resp.Header.DelBytes(k)
	}
	for _, kv := range rt.respSet {
		resp.Header.SetBytesKV(kv[0], kv[1])
	}
	resp.Header.SetCanonical(headerRequestID, rid)
	if retries > 0 {
		resp.Header.SetCanonical(headerRetryCount, smallInt(retries))
	}
	if clientClose {
		ctx.SetConnectionClose()
	}
}

var headerRetryCount = []byte("X-Retry-Count")

// forward sends the request to the route's upstream, retrying as its
// policy allows, and leaves the answer in ctx.Response. It returns the
// fault to answer with instead (nil when ctx.Response holds the answer,
// which may be an upstream 5xx after the last try) and how many retries
// were made.
//
// A retry happens only when all of these hold: the failure is one the
// policy retries (retry.on), a try is left (retry.attempts) and time is
// left (the route timeout bounds all tries), the request can be sent again
// (its body is in memory, or it never left), repeating it is safe (an
// idempotent method or an Idempotency-Key, or it never reached the
// target), and the upstream's retry budget has room. Each retry goes to a
// target not tried yet when there is one.
func (s *Snapshot) forward(ctx *fasthttp.RequestCtx, rt *Route, lim *bodyLimiter, key uint64, rec *requestRecord) (*Fault, int) {
	up := rt.upstream
	req, resp := &ctx.Request, &ctx.Response
	// From here, not from the request's arrival: the route timeout bounds
	// the upstream exchange (config: routes[].timeout), not auth or limits.
	deadline := time.Now().Add(rt.timeout)
	up.Pool.Budget.Request()
	// Decided before the first try: sending a streamed body consumes it,
	// and fasthttp then drops it from the request.
	replayable := !req.IsBodyStream()
	var exclude uint64
	var fault *Fault
	retries := 0
	for attempt := 1; ; attempt++ {
		target, idx, err := up.Pool.Pick(key, exclude)
		if err != nil && exclude != 0 {
			// Every target has been tried: the retry may go to one again.
			target, idx, err = up.Pool.Pick(key, 0)
		}
		if err != nil {
			if attempt > 1 {
				return fault, retries // keep the last try's answer
			}
			if errors.Is(err, pool.ErrCircuitOpen) {
				return faultCircuitOpen, 0
			}
			return faultNoTarget, 0
		}
		switch rt.hostMode {
		case hostTarget:
			req.Header.SetHost(target.Host)
		case hostLiteral:
			req.Header.SetHostBytes(rt.hostValue)
		}
		req.UseHostHeader = true
		t0 := time.Now()
		tryTimeout := deadline.Sub(t0)
		if up.retry.perTry > 0 && up.retry.perTry < tryTimeout {
			tryTimeout = up.retry.perTry
		}
		if tryTimeout <= 0 {
			up.Pool.Report(target, pool.Neutral, 0)
			return faultTimeout, retries
		}
		req.SetTimeout(tryTimeout)

		target.Begin()
		err = target.Client.Do(req, resp)
		target.Done()
		rtt := time.Since(t0)
		up.metrics.Try(rtt)
		if rec != nil {
			rec.upstream, rec.target = up.Name, target.URL
			rec.upstreamTime += rtt
			rec.retries = retries
		}

		retryable, neverSent := false, false
		switch {
		case err != nil && lim != nil && (lim.tooLarge || lim.clientErr != nil):
			// The client's fault: tell nobody about the target.
			up.Pool.Report(target, pool.Neutral, rtt)
			if lim.tooLarge {
				return faultBodyTooLarge, retries
			}
			return faultClientBody, retries
		case err != nil:
			kind := pool.Classify(err)
			up.metrics.Error(uint8(kind))
			fault = faultFor(kind, err)
			outcome := pool.Failure
			if kind == pool.KindBusy {
				outcome = pool.Neutral // our connection cap, not the target's failure
			}
			up.Pool.Report(target, outcome, rtt)
			retryable, neverSent = up.retry.onKind[kind], kind.NeverSent()
			s.log.Warn("upstream request failed", "route", rt.Name, "target", target.URL,
				"kind", kind.String(), "error", err.Error(), "attempt", attempt, "request_id", string(req.Header.PeekBytes(headerRequestID)))
		default:
			fault = nil
			code := resp.StatusCode()
			if code >= 500 {
				up.metrics.Status5xx()
				up.Pool.Report(target, pool.Failure, rtt)
				retryable = code <= 599 && up.retry.onStatus[code-500]
			} else {
				up.Pool.Report(target, pool.Success, rtt)
			}
		}

		if !retryable || attempt >= up.retry.attempts {
			return fault, retries
		}
		if !neverSent && (!replayable || !pool.Idempotent(req)) {
			return fault, retries
		}
		if !up.Pool.Budget.TryRetry() {
			s.logBudgetExhausted(up)
			return fault, retries
		}
		pause := up.retry.backoffFor(attempt)
		if time.Until(deadline) <= pause {
			return fault, retries
		}
		time.Sleep(pause)
		if idx < 64 {
			exclude |= 1 << uint(idx)
		}
		retries++
		up.metrics.Retry()
	}
}

func (s *Snapshot) logBudgetExhausted(up *Upstream) {
	now := time.Now().UnixNano()
	last := up.budgetLogAt.Load()
	if now-last < int64(time.Second) || !up.budgetLogAt.CompareAndSwap(last, now) {
		return // at most one line a second per upstream
	}
	s.log.Warn("retry budget exhausted: not retrying", "upstream", up.Name, "denied_total", up.Pool.Budget.Denied())
}

// smallInt formats 0..99 without allocating.
func smallInt(n int) []byte {
	return []byte(smallInts[min(n, 99)])
}

var smallInts = func() (out [100]string) {
	for i := range out {
		out[i] = strconv.Itoa(i)
	}
	return out
}()

// setForwardURI sets the origin-form request target sent upstream: the
// path as received (byte-exact) or rewritten, plus the query untouched.
func setForwardURI(req *fasthttp.Request, rt *Route) {
	path, query := splitURI(req.Header.RequestURI())
	buf := bytebufferpool.Get()
	b := buf.B[:0]
	if rt.replacePath != nil {
		b = append(b, rt.replacePath...)
	} else {
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
	buf.B = b
	bytebufferpool.Put(buf)
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
}

var limiterPool = sync.Pool{New: func() any { return new(bodyLimiter) }}

func acquireLimiter(r io.Reader, max, contentLength int) *bodyLimiter {
	l := limiterPool.Get().(*bodyLimiter)
	l.r, l.left, l.expect = r, max, contentLength
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
	if len(p) > l.left+1 {
		p = p[:l.left+1] // one byte past the limit is enough to know
	}
	n, err := l.r.Read(p)
	if n > l.left {
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
