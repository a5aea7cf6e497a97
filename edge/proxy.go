package edge

import (
	"errors"
	"io"
	"sync"

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
	stripHopByHop(&req.Header)
	req.Header.ResetConnectionClose()
	req.Header.SetProtocol("HTTP/1.1")
	s.setForwarded(ctx)
	for _, k := range rt.reqRemove {
		req.Header.DelBytes(k)
	}
	for _, kv := range rt.reqSet {
		req.Header.SetBytesKV(kv[0], kv[1])
	}
	setForwardURI(req, rt)

	target, err := rt.pool.Pick(0)
	if err != nil {
		releaseLimiter(lim)
		writeFault(ctx, faultNoTarget, rid)
		return
	}
	switch rt.hostMode {
	case hostTarget:
		req.Header.SetHost(target.Host)
	case hostLiteral:
		req.Header.SetHostBytes(rt.hostValue)
	}
	req.UseHostHeader = true
	req.SetTimeout(rt.timeout)

	target.Begin()
	err = target.Client.Do(req, &ctx.Response)
	target.Done()
	if lim != nil {
		switch {
		case lim.tooLarge:
			err = errBodyTooLarge
		case lim.clientErr != nil:
			err = errClientBody
		}
		releaseLimiter(lim)
	}
	if err != nil {
		f := classify(err)
		if f.Source == FromUpstream {
			s.log.Warn("upstream request failed", "route", rt.Name, "target", target.URL, "error", err.Error(), "request_id", string(rid))
		}
		writeFault(ctx, f, rid)
		switch {
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
	stripHopByHop(&resp.Header)
	appendVia(&resp.Header)
	for _, k := range rt.respRemove {
		resp.Header.DelBytes(k)
	}
	for _, kv := range rt.respSet {
		resp.Header.SetBytesKV(kv[0], kv[1])
	}
	resp.Header.SetBytesKV(headerRequestID, rid)
	if clientClose {
		ctx.SetConnectionClose()
	}
}

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
