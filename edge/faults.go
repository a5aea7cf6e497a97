package edge

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluicegw/sluice/pool"
	"github.com/valyala/fasthttp"
)

// fault is a data-plane failure: what the client is told. Every failure
// path answers through writeFault (or exchange.fail), so all errors look
// alike: a status, a short JSON body and the request id. Whose fault it
// was is the pool's business (pool.Classify); the client only sees this.
type fault struct {
	status int
	msg    string // a fixed phrase, never client or upstream data
}

// The faults sluice answers with. Messages are constants: they go into the
// JSON body unescaped.
var (
	faultBadRequest     = &fault{fasthttp.StatusBadRequest, "bad request"}
	faultBodyTooLarge   = &fault{fasthttp.StatusRequestEntityTooLarge, "request body too large"}
	faultRequestTimeout = &fault{fasthttp.StatusRequestTimeout, "request timeout"}
	faultHeaderTooLarge = &fault{fasthttp.StatusRequestHeaderFieldsTooLarge, "request headers too large"}
	faultClientBody     = &fault{fasthttp.StatusBadRequest, "could not read request body"}
	faultTimeout        = &fault{fasthttp.StatusGatewayTimeout, "upstream timed out"}
	faultConnect        = &fault{fasthttp.StatusBadGateway, "upstream connection failed"}
	faultUpstreamTLS    = &fault{fasthttp.StatusBadGateway, "upstream TLS handshake failed"}
	faultBadResponse    = &fault{fasthttp.StatusBadGateway, "bad response from upstream"}
	faultResponseLarge  = &fault{fasthttp.StatusBadGateway, "upstream response too large"}
	faultUpstreamBusy   = &fault{fasthttp.StatusServiceUnavailable, "upstream connection limit reached"}
	faultNoTarget       = &fault{fasthttp.StatusServiceUnavailable, "no upstream target available"}
	faultCircuitOpen    = &fault{fasthttp.StatusServiceUnavailable, "upstream circuit open"}
	faultNotCached      = &fault{fasthttp.StatusGatewayTimeout, "not in cache (only-if-cached)"}
)

// writeFault answers the client with f. It discards whatever response was
// being built (including a streamed upstream body, whose connection is then
// closed by the stream).
func writeFault(ctx *fasthttp.RequestCtx, f *fault, requestID []byte) {
	ctx.Response.Reset()
	ctx.Response.SetStatusCode(f.status)
	ctx.Response.Header.SetContentType("application/json")
	if len(requestID) > 0 {
		ctx.Response.Header.SetBytesKV(headerRequestID, requestID)
	}
	ctx.Response.Header.Set("Cache-Control", "no-store")
	r := &ctx.Response
	r.AppendBody(jsonErrorPrefix)
	r.AppendBodyString(f.msg) // a constant phrase: nothing to escape
	r.AppendBody(jsonRequestIDKey)
	r.AppendBody(requestID) // validated or generated: only [A-Za-z0-9._:-]
	r.AppendBody(jsonClose)
}

var (
	jsonErrorPrefix  = []byte(`{"error":"`)
	jsonRequestIDKey = []byte(`","request_id":"`)
	jsonClose        = []byte("\"}\n")
)

// faultFor maps a failed upstream exchange to the fault the client sees.
func faultFor(kind pool.ErrKind, err error) *fault {
	switch kind {
	case pool.KindBusy:
		return faultUpstreamBusy
	case pool.KindTimeout:
		return faultTimeout
	case pool.KindConnect:
		if errors.Is(err, fasthttp.ErrDialTimeout) {
			return faultTimeout
		}
		return faultConnect
	case pool.KindReset:
		return faultConnect
	case pool.KindTLS:
		return faultUpstreamTLS
	}
	return faultBadResponse
}

// serverErrorHandler answers errors fasthttp hits before the handler runs
// (unparseable request, oversized headers or body), in sluice's format.
func serverErrorHandler(ctx *fasthttp.RequestCtx, err error) {
	var id [requestIDLen]byte
	rid := newRequestID(id[:0])
	var small *fasthttp.ErrSmallBuffer
	var netErr net.Error
	switch {
	case errors.As(err, &netErr) && netErr.Timeout():
		// RFC 9110 15.5.9: the head did not arrive within read_timeout.
		writeFault(ctx, faultRequestTimeout, rid)
	case errors.As(err, &small):
		writeFault(ctx, faultHeaderTooLarge, rid)
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		writeFault(ctx, faultBodyTooLarge, rid)
	default:
		writeFault(ctx, faultBadRequest, rid)
	}
	lingerClose(ctx) // the rest of the request is unread
}

// Lingering close bounds: how long, and how much, sluice keeps reading an
// unwanted request body after answering early (nginx's lingering_close).
const (
	lingerTimeout  = 2 * time.Second
	lingerMaxBytes = 64 << 20
)

// lingerClose ends a connection after the answer being built: it is
// written with "Connection: close", and the close lingers (lingerConn).
// For an answer sent before the request was read to its end (an early
// 413, a refused framing), where closing at once would make the kernel
// send a TCP reset that can destroy the answer before the client reads it.
func lingerClose(ctx *fasthttp.RequestCtx) {
	ctx.SetConnectionClose()
	c := ctx.Conn()
	if tc, ok := c.(*tls.Conn); ok {
		// A TLS listener (tls_listen.go): tls.Conn.Close writes its
		// close_notify, then closes the lingering TCP connection under it,
		// which drains the rest of the (encrypted) request.
		c = tc.NetConn()
	}
	if lc, ok := c.(*lingerConn); ok {
		lc.linger.Store(true)
	}
}

// lingerListener hands out connections that can linger when closed.
type lingerListener struct{ net.Listener }

func (l lingerListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok && err == nil {
		return &lingerConn{TCPConn: tc}, nil
	}
	return c, err
}

// lingerConn is a client connection whose Close, once marked, first ends
// sluice's side (FIN), then reads and drops what the client still sends
// for a bounded time and amount, then closes: the client reads the whole
// answer instead of a reset (nginx's lingering close).
//
// Its deadlines are armed coarsely (pool.CoarseDeadline): fasthttp sets
// the write deadline before every answer, WriteTimeout from then, and the
// read deadline twice per request (the idle timeout before waiting for
// the next request, ReadTimeout once its first byte is in), and
// re-arming the runtime's timer each time is a good part of what a
// request costs sluice over a bare fasthttp proxy. A timeout fires up to
// 1/pool.DeadlineSlack late (of the longer of the two, when the armed
// deadline was for the other timeout), never early.
//
// A read deadline is also armed lazily: SetReadDeadline notes it, and the
// next read of the socket arms it (at once when a read is already under
// way, so a deadline set from another goroutine still wakes it). A
// request whose head arrived whole with its first byte is never read
// again under ReadTimeout, so the idle deadline armed for the wait before
// it still covers the next one and steady keep-alive traffic arms none.
type lingerConn struct {
	*net.TCPConn
	linger atomic.Bool

	mu      sync.Mutex // deadline state: a hijacked connection (a tunnel) may set deadlines from two goroutines
	wd      pool.CoarseDeadline
	rd      pool.CoarseDeadline
	rdWant  time.Time // the read deadline asked for, not yet armed
	rdLazy  bool      // rdWant is to be armed before the next read
	reading int       // reads of the socket under way
}

func (c *lingerConn) SetWriteDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.wd.Covers(t) {
		return nil // no clock read either
	}
	var timeout time.Duration
	if !t.IsZero() {
		timeout = time.Until(t)
	}
	d, arm := c.wd.Next(t, timeout)
	if !arm {
		return nil
	}
	err := c.TCPConn.SetWriteDeadline(d)
	if err != nil {
		c.wd.Forget()
	}
	return err
}

func (c *lingerConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.reading > 0 {
		c.rdLazy = false
		return c.armRead(t)
	}
	c.rdWant, c.rdLazy = t, true
	return nil
}

// armRead arms read deadline t, or keeps the armed one when it covers t.
// c.mu is held.
func (c *lingerConn) armRead(t time.Time) error {
	if c.rd.Covers(t) {
		return nil // no clock read either
	}
	var timeout time.Duration
	if !t.IsZero() {
		timeout = time.Until(t)
	}
	d, arm := c.rd.Next(t, timeout)
	if !arm {
		return nil
	}
	err := c.TCPConn.SetReadDeadline(d)
	if err != nil {
		c.rd.Forget()
	}
	return err
}

// SetDeadline sets both deadlines at once: the armed ones are forgotten,
// a noted read deadline dropped.
func (c *lingerConn) SetDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.wd.Forget()
	c.rd.Forget()
	c.rdLazy = false
	return c.TCPConn.SetDeadline(t)
}

// beginRead arms a noted read deadline before a read of the socket;
// endRead follows the read.
func (c *lingerConn) beginRead() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.rdLazy {
		c.rdLazy = false
		if err := c.armRead(c.rdWant); err != nil {
			return err
		}
	}
	c.reading++
	return nil
}

func (c *lingerConn) endRead() {
	c.mu.Lock()
	c.reading--
	c.mu.Unlock()
}

func (c *lingerConn) Read(p []byte) (int, error) {
	if err := c.beginRead(); err != nil {
		return 0, err
	}
	defer c.endRead()
	return c.TCPConn.Read(p)
}

// WriteTo reads the socket too (io.Copy prefers it to Read).
func (c *lingerConn) WriteTo(w io.Writer) (int64, error) {
	if err := c.beginRead(); err != nil {
		return 0, err
	}
	defer c.endRead()
	return c.TCPConn.WriteTo(w)
}

func (c *lingerConn) Close() error {
	if c.linger.Load() {
		_ = c.CloseWrite()
		_ = c.SetDeadline(time.Now().Add(lingerTimeout))
		_, _ = io.CopyN(io.Discard, c.TCPConn, lingerMaxBytes)
	}
	return c.TCPConn.Close()
}
