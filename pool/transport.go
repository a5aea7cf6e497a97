package pool

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"
)

// transport is the fasthttp.RoundTripper of every sluice HostClient.
//
// fasthttp's own transport either buffers every response body whole
// (unbounded memory for a 200 MiB download) or, with StreamResponseBody,
// wraps every response in freshly allocated closures. This one does what a
// proxy wants:
//   - a body of known length up to bufferBody is read whole into the
//     response (no allocation once buffers are warm);
//   - a larger, chunked or close-delimited body is streamed: the response
//     gets a pooled bodyStream that reads from the upstream connection and
//     hands the connection back (or closes it, if the body was not read to
//     the end) when fasthttp's server closes the stream after writing it.
//     fasthttp's server reads the stream only as fast as it can write to
//     the client, so a slow client slows the upstream read (TCP flow
//     control does the rest) instead of growing the heap.
//
// Memory held for one streamed answer, whatever its size: the upstream
// bufio.Reader (HeaderBufferBytes, 16 KiB by default, kept until the
// stream closes), the pooled bodyStream and fasthttp's response stream
// (a few hundred bytes), and on the client side fasthttp's server write
// buffer (16 KiB; sluice's Server.WriteBufferSize) plus, for a re-chunked
// body, its 4 KiB copy buffer. The upstream write buffer (16 KiB) is held
// only while the request is sent. Bytes in flight beyond these sit in
// kernel socket buffers.
//
// A connection goes back to the pool only when its framing is beyond
// doubt (see idlecheck.go for why): the response ended exactly where its
// framing said, nothing was read past that end, no interim response sluice
// does not relay came first, and, when it is taken again, nothing has
// arrived on it while it sat idle.
//
// Deadlines: the request's own timeout (Request.SetTimeout) bounds sending
// a buffered request and receiving the response head; after a streamed
// upload it counts from the end of the upload. While a large body streams
// in either direction each read or write gets the per-operation timeout
// instead, so a long transfer that keeps moving is not cut off.
type transport struct {
	bufferBody   int
	readTimeout  time.Duration
	writeTimeout time.Duration
	// streamFailures counts response bodies that broke off after their
	// head was returned (Target.StreamFailures); nil: not counted.
	streamFailures *atomic.Uint64
}

var (
	// ErrUpstreamClosed is returned when a reused keep-alive connection
	// turns out to have been closed by the upstream before it answered.
	ErrUpstreamClosed = errors.New("pool: upstream closed the connection before answering")
	// ErrSwitchingProtocols: the upstream answered 101 on a pooled
	// connection. Requests sent through the pool never ask for an upgrade
	// (Upgrade is hop-by-hop and stripped; WebSocket upgrades take a
	// connection of their own, edge/websocket.go), so the answer can't be
	// passed on; the connection, now speaking something else, is closed.
	ErrSwitchingProtocols = errors.New("pool: upstream switched protocols")
	// ErrInvalidChunked: a chunked response body whose first chunk-size
	// line (RFC 9112 section 7.1) is malformed, found before the head was
	// handed on, so the client gets a 502 instead of a broken 200.
	ErrInvalidChunked = errors.New("pool: invalid chunked response body")
	// ErrStreamBroken is wrapped around the error that cut off a response
	// body after its head had been returned (a reset, a truncation, a bad
	// chunk, a read timeout): by then the client has its status line, and
	// all that is left is to close its connection. Target.StreamFailures
	// counts these. A client that stops reading is not one.
	ErrStreamBroken = errors.New("pool: upstream response body broke off")
	// ErrResponseTooLarge: a streamed response body went past the limit
	// LimitStream set. It is wrapped in ErrStreamBroken (the client's
	// connection is closed the same way) but not counted against the
	// target: the transport did nothing wrong.
	ErrResponseTooLarge = errors.New("pool: response body over the limit")
	// errTooManyInterim: more 1xx responses than any real upstream sends.
	errTooManyInterim = errors.New("pool: too many 1xx responses")
	// errNoCleanConn: every idle connection taken, up to maxStaleSkips,
	// had unread bytes or was closed. The request was never sent, and it
	// is sluice's pool that failed rather than the target, so it wraps
	// ErrNoFreeConns: Classify makes it KindBusy (neutral, never sent).
	errNoCleanConn = fmt.Errorf("pool: no clean idle connection: %w", fasthttp.ErrNoFreeConns)
)

// A stale idle connection is closed and another one taken. After
// flushStaleAfter stale ones in a row the rest of the idle pool is most
// likely stale too (the upstream restarted, or closes idle connections
// before sluice does): all of it is closed at once, so the next one is
// dialed. maxStaleSkips bounds the loop when connections keep coming back
// stale as fast as they are closed.
const (
	flushStaleAfter = 4
	maxStaleSkips   = 16
)

func (t *transport) RoundTrip(hc *fasthttp.HostClient, req *fasthttp.Request, resp *fasthttp.Response) (bool, error) {
	// Decided before sending: writing a streamed body consumes it and
	// fasthttp then drops it from the request.
	canReplay := replayable(req)
	retried := false
	for {
		reused, err := t.roundTrip(hc, req, resp)
		// A keep-alive connection the upstream closed just as it was
		// taken (the close crossing the request on the wire, after the
		// idle check found it quiet) fails before any byte comes back.
		// Like net/http, try once more on a new connection, only when the
		// request can be sent again unchanged: its body is in memory and
		// repeating it is safe.
		if err != nil && reused && !retried && errors.Is(err, ErrUpstreamClosed) && canReplay {
			retried = true
			continue
		}
		return false, err
	}
}

// replayable: the body is buffered (not a consumed stream) and repeating
// the request is safe (Idempotent).
func replayable(req *fasthttp.Request) bool {
	return !req.IsBodyStream() && Idempotent(req)
}

func (t *transport) roundTrip(hc *fasthttp.HostClient, req *fasthttp.Request, resp *fasthttp.Response) (reused bool, err error) {
	// One clock read per exchange (time.Now is ~60 ns on some VMs).
	timeout := req.GetTimeOut()
	now := time.Now()
	var deadline time.Time
	if timeout > 0 {
		deadline = now.Add(timeout)
	}
	cc, err := hc.AcquireConn(timeout, req.ConnectionClose())
	if err != nil {
		return false, err
	}
	reused = cc.LastUseTime().After(cc.CreatedTime())
	// An idle connection that has become readable (a late response, the
	// tail of an over-long body, an EOF, a reset) is closed and another
	// taken. Not an upstream failure and not a retry: the request has not
	// been sent. A freshly dialed connection needs no look.
	for skipped := 1; reused && checkIdle(cc.Conn()) != idleQuiet; skipped++ {
		hc.CloseConn(cc)
		if skipped == flushStaleAfter {
			hc.CloseIdleConnections()
		}
		if skipped > maxStaleSkips {
			return false, errNoCleanConn
		}
		if cc, err = hc.AcquireConn(timeout, req.ConnectionClose()); err != nil {
			return false, err
		}
		reused = cc.LastUseTime().After(cc.CreatedTime())
	}
	conn := cc.Conn()

	// Send the request. With equal read and write timeouts (the default)
	// one SetDeadline covers both directions: the runtime then keeps a
	// single timer for the connection instead of two, per request.
	streaming := req.IsBodyStream()
	oneDeadline := !streaming && t.readTimeout == t.writeTimeout
	if streaming {
		err = t.writeStreaming(conn, req)
	} else {
		if oneDeadline {
			d := earliest(now, deadline, t.writeTimeout)
			err = setDeadlineCoarse(conn, d, d.Sub(now))
		} else {
			err = conn.SetWriteDeadline(earliest(now, deadline, t.writeTimeout))
		}
		if err == nil {
			bw := hc.AcquireWriter(conn)
			if err = req.Write(bw); err == nil {
				err = bw.Flush()
			}
			hc.ReleaseWriter(bw)
		}
	}
	if err != nil {
		hc.CloseConn(cc)
		if reused && closedByPeer(err) {
			// The upstream closed the idle connection just after it was
			// checked: nothing was read, the request can't have been
			// processed, and RoundTrip may send it again.
			err = ErrUpstreamClosed
		}
		return reused, err
	}

	// Read the response head.
	if !oneDeadline {
		// Read the clock again: a streamed upload may have taken a while,
		// and both the read timeout and the request's own timeout count
		// from the end of sending. The upload's pace was the client's: a
		// slow client must not turn an answer the upstream is giving into
		// a timeout blamed on the target.
		now = time.Now()
		if streaming && timeout > 0 {
			deadline = now.Add(timeout)
		}
		if err = conn.SetReadDeadline(earliest(now, deadline, t.readTimeout)); err != nil {
			hc.CloseConn(cc)
			return reused, err
		}
	}
	br := hc.AcquireReader(conn)
	if req.Header.IsHead() {
		resp.SkipBody = true
	}
	doubt, err := readHead(resp, br)
	if err != nil {
		hc.ReleaseReader(br)
		hc.CloseConn(cc)
		return reused, err
	}
	closeConn := doubt || req.ConnectionClose() || resp.ConnectionClose()
	// Connection is hop-by-hop: the upstream closing its connection must
	// not close the client's.
	resp.Header.ResetConnectionClose()

	cl := resp.Header.ContentLength()
	if resp.SkipBody || noBody(resp.StatusCode()) {
		// RFC 9110 section 8.6 and RFC 9112 section 6.1: a 204 carries
		// neither Content-Length (but 0) nor Transfer-Encoding; one that
		// does may be followed by a body, and where the next response
		// starts is in doubt. (A HEAD response or a 304 may carry both: they
		// describe the representation, not a body.) Bytes already read past
		// the head are a body the status said is not there.
		if resp.StatusCode() == fasthttp.StatusNoContent && cl != 0 && cl != -2 {
			closeConn = true
		}
		closeConn = closeConn || br.Buffered() > 0
		hc.ReleaseReader(br)
		finish(hc, cc, closeConn, releaseConn, closeConnFn)
		return reused, nil
	}
	if cl >= 0 && cl <= t.bufferBody {
		err = resp.ReadBody(br, t.bufferBody)
		// Bytes read past Content-Length belong to no request: a body
		// longer than it said, or a response nobody asked for.
		closeConn = closeConn || err != nil || br.Buffered() > 0
		hc.ReleaseReader(br)
		finish(hc, cc, closeConn, releaseConn, closeConnFn)
		return reused, err
	}
	if cl == -1 && chunkSizeLineBroken(br) {
		hc.ReleaseReader(br)
		hc.CloseConn(cc)
		return reused, ErrInvalidChunked
	}
	// Stream it. A close-delimited body (-2) ends with the connection.
	return reused, startStream(hc, cc, br, resp, closeConn || cl == -2, t.readTimeout, t.streamFailures, releaseConn, closeConnFn)
}

// closedByPeer: a write failed because the upstream had closed or reset
// the connection.
func closedByPeer(err error) bool {
	return errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, io.EOF)
}

// chunkSizeLineBroken looks at the start of a chunked body, if it has
// already arrived with the head, without reading it: a first chunk-size
// line that fasthttp's chunk parser would refuse (RFC 9112 section 7.1:
// 1*HEXDIG, optional whitespace and ;extensions, CRLF) makes the response
// a 502 now rather than a 200 cut off later. It never waits for bytes: an
// upstream that sends its head first and the first chunk later (server-sent
// events) must get its head through at once.
func chunkSizeLineBroken(br *bufio.Reader) bool {
	b, _ := br.Peek(br.Buffered()) // no I/O: at most what is buffered
	if len(b) == 0 {
		return false
	}
	i := 0
	for i < len(b) && isHex(b[i]) {
		i++
	}
	if i == 0 || i > maxChunkSizeDigits {
		return true
	}
	ext, ows := false, false
	for ; i < len(b); i++ {
		switch c := b[i]; {
		case c == '\r':
			return i+1 < len(b) && b[i+1] != '\n'
		case c == '\n':
			return true
		case ext:
		case c == ' ' || c == '\t':
			ows = true
		case c == ';' && !ows:
			ext = true
		default:
			return true
		}
	}
	return false // the line has not all arrived yet
}

// maxChunkSizeDigits is fasthttp's limit for a chunk size (maxHexIntChars
// on 64-bit platforms; on 32-bit ones fasthttp's own parser refuses more
// digits later, mid-stream).
const maxChunkSizeDigits = 15

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// The connection type fasthttp hands out (*fasthttp.clientConn) is
// unexported, so code that keeps one must get its type by inference; these
// method expressions carry it into the generic helpers below.
var (
	releaseConn = (*fasthttp.HostClient).ReleaseConn
	closeConnFn = (*fasthttp.HostClient).CloseConn
)

func finish[C any](hc *fasthttp.HostClient, cc C, closeConn bool, release, closeFn func(*fasthttp.HostClient, C)) {
	if closeConn {
		closeFn(hc, cc)
	} else {
		release(hc, cc)
	}
}

// bodyStream relays a large upstream body to the client. fasthttp's server
// reads it while writing the response and then calls Close, which returns
// the upstream connection to its pool only if the body was read to its end
// and nothing was read past it.
type bodyStream[C any] struct {
	hc        *fasthttp.HostClient
	cc        C
	conn      net.Conn
	br        *bufio.Reader
	body      io.Reader
	timeout   time.Duration
	failures  *atomic.Uint64
	watcher   StreamWatcher // nil: nobody asked
	filter    StreamFilter  // nil: the body is relayed as it comes
	inner     StreamFilter  // the filter filter reads from (FilterStream chains two); nil: none
	limit     int64         // body bytes allowed; 0: no limit (LimitStream)
	stopped   atomic.Bool   // Stop: end the body cleanly at the next read
	stopMu    sync.Mutex    // Stop against Close: conn is nil once closing
	broken    error         // what broke the body off, for the watcher
	read      int64         // body bytes relayed so far, for the error
	closeConn bool
	chunked   bool // the upstream framed the body chunked (RFC 9112 7.1)
	eof       bool
	failed    bool
	release   func(*fasthttp.HostClient, C)
	closeFn   func(*fasthttp.HostClient, C)
	// up parses the body framing (chunked, fixed or close-delimited) with
	// fasthttp's own pooled reader.
	up fasthttp.Response
}

var streamPool sync.Pool // of *bodyStream[*fasthttp.clientConn], by inference

func startStream[C interface{ Conn() net.Conn }](hc *fasthttp.HostClient, cc C, br *bufio.Reader, resp *fasthttp.Response,
	closeConn bool, timeout time.Duration, failures *atomic.Uint64, release, closeFn func(*fasthttp.HostClient, C)) error {
	s, _ := streamPool.Get().(*bodyStream[C])
	if s == nil {
		s = &bodyStream[C]{}
	}
	s.hc, s.cc, s.conn, s.br, s.timeout, s.failures = hc, cc, cc.Conn(), br, timeout, failures
	s.closeConn, s.release, s.closeFn = closeConn, release, closeFn
	cl := resp.Header.ContentLength()
	s.chunked = cl == -1 // fasthttp: -1 chunked, -2 read until close
	s.up.Header.SetContentLength(cl)
	s.up.StreamBody = true
	if err := s.up.ReadBody(br, 0); err != nil {
		s.closeConn = true
		_ = s.Close()
		return err
	}
	s.body = s.up.BodyStream()
	if cl < 0 {
		cl = -1 // re-framed as chunked towards the client
	}
	resp.SetBodyStream(s, cl)
	return nil
}

// Read gives the client the body: through the filter when there is one.
func (s *bodyStream[C]) Read(p []byte) (int, error) {
	if s.filter != nil {
		return s.filter.Read(p)
	}
	return s.readRaw(p)
}

// rawBody is the upstream body before any filter.
type rawBody[C any] struct{ s *bodyStream[C] }

func (r rawBody[C]) Read(p []byte) (int, error) { return r.s.readRaw(p) }

func (s *bodyStream[C]) readRaw(p []byte) (int, error) {
	if s.body == nil {
		return 0, io.EOF
	}
	if s.timeout > 0 {
		_ = s.conn.SetReadDeadline(time.Now().Add(s.timeout))
	}
	if s.watcher != nil {
		s.watcher.StreamRead()
	}
	// After the deadline is set: a Stop before this point is seen here,
	// one after it sets its past deadline later than ours.
	if s.stopped.Load() {
		return 0, io.EOF
	}
	n, err := s.body.Read(p)
	if s.limit > 0 && s.read+int64(n) > s.limit && !s.failed {
		// Cut at the limit: the client gets the bytes up to it, then its
		// connection is closed (fasthttp's server does that on the error),
		// and the upstream's is not reused (eof was never reached).
		n = int(s.limit - s.read)
		s.read, s.failed = s.limit, true
		s.broken = fmt.Errorf("%w after %d bytes: %w", ErrStreamBroken, s.read, ErrResponseTooLarge)
		return n, s.broken
	}
	s.read += int64(n)
	if err != nil && s.stopped.Load() {
		// Stopped for a shutdown: a clean end (the client gets the
		// closing chunk), not an upstream failure. The connection is
		// closed, since the body was not read to its end.
		return n, io.EOF
	}
	if err == io.EOF && s.chunked && hungUp(s.conn) {
		// The chunked body ended on the upstream hanging up, not on its
		// last (zero-size) chunk: fasthttp reports a close between two
		// chunks as a clean end. RFC 9112 7.1: the message is incomplete.
		err = io.ErrUnexpectedEOF
	}
	switch {
	case err == nil:
	case err == io.EOF:
		s.eof = true
	case !s.failed:
		// The upstream broke off mid-body: a reset, a truncated body
		// (io.ErrUnexpectedEOF), a malformed chunk, a read timeout. The
		// client already has a status line; fasthttp's server closes its
		// connection when this error comes back, so the client sees a
		// cut-off body rather than a complete-looking wrong one.
		s.failed = true
		if s.failures != nil {
			s.failures.Add(1)
		}
		err = fmt.Errorf("%w after %d bytes: %w", ErrStreamBroken, s.read, err)
		s.broken = err
	}
	return n, err
}

// StreamWatcher hears how a streamed response body ended, when fasthttp's
// server closes it after writing the response: the body bytes relayed,
// and the error that broke it off upstream (wrapping ErrStreamBroken), or
// nil when it was read to its end or the client stopped reading.
type StreamWatcher interface {
	// StreamRead is called before each read of the upstream body: the
	// client side refreshes its own write deadline then, so a long
	// transfer that keeps moving is not cut off there either.
	StreamRead()
	StreamDone(relayed int64, broken error)
}

// WatchStream registers w for resp's body when it is a stream this
// package's transport relays, and reports whether it did (w is then
// called exactly once, from the goroutine that closes the stream).
func WatchStream(resp *fasthttp.Response, w StreamWatcher) bool {
	s, ok := resp.BodyStream().(interface{ watch(StreamWatcher) })
	if ok {
		s.watch(w)
	}
	return ok
}

func (s *bodyStream[C]) watch(w StreamWatcher) {
	s.watcher = w
}

// StreamStopper ends a watched stream early: the body ends cleanly at
// once (the read waiting on the upstream returns), as if the upstream
// had finished. Valid until the watcher's StreamDone returns: the stream
// is not reused before.
type StreamStopper interface{ Stop() }

// Stopper returns the StreamStopper of a stream WatchStream accepted.
func Stopper(resp *fasthttp.Response) StreamStopper {
	s, _ := resp.BodyStream().(StreamStopper)
	return s
}

func (s *bodyStream[C]) Stop() {
	s.stopMu.Lock()
	if s.conn != nil {
		s.stopped.Store(true)
		_ = s.conn.SetReadDeadline(time.Unix(1, 0))
	}
	s.stopMu.Unlock()
}

// A StreamFilter rewrites a streamed response body on its way to the
// client (edge's compression), or looks at it (edge's cache). It reads the
// upstream body from the source FilterStream gives it; Done is called
// once, when the stream is closed, after which the filter must not touch
// the source.
type StreamFilter interface {
	Read(p []byte) (int, error)
	Start(src io.Reader)
	Done()
}

// FilterStream puts f between resp's body stream (one this package's
// transport relays) and the client, and reports whether it did. Two
// filters chain (the second reads the first's output; the outer one's
// Done is called first); a third is refused. The
// watcher still hears the upstream's byte count. Replacing the stream
// with Response.SetBodyStream instead would close it, handing the
// connection back before its body is read.
func FilterStream(resp *fasthttp.Response, f StreamFilter) bool {
	s, ok := resp.BodyStream().(interface{ setFilter(StreamFilter) bool })
	return ok && s.setFilter(f)
}

// LimitStream cuts resp's body stream (one this package's transport
// relays) after max bytes with ErrResponseTooLarge, and reports whether
// it could.
func LimitStream(resp *fasthttp.Response, max int64) bool {
	s, ok := resp.BodyStream().(interface{ setLimit(int64) })
	if ok {
		s.setLimit(max)
	}
	return ok
}

func (s *bodyStream[C]) setLimit(max int64) { s.limit = max }

func (s *bodyStream[C]) setFilter(f StreamFilter) bool {
	switch {
	case s.filter == nil:
		f.Start(rawBody[C]{s})
	case s.inner == nil:
		// Filters chain: the new one reads what the first one gives
		// (edge's cache copies the upstream's bytes, then compression
		// encodes them).
		s.inner = s.filter
		f.Start(s.inner)
	default:
		return false
	}
	s.filter = f
	return true
}

// Close hands the connection back (body read to its end, nothing read
// past it) or closes it.
func (s *bodyStream[C]) Close() error {
	s.stopMu.Lock()
	s.conn = nil // from here on, Stop must not touch the connection
	s.stopMu.Unlock()
	_ = s.up.CloseBodyStream()
	reuse := s.eof && !s.closeConn && s.br.Buffered() == 0
	s.hc.ReleaseReader(s.br)
	finish(s.hc, s.cc, !reuse, s.release, s.closeFn)
	s.up.Reset()
	if s.filter != nil {
		s.filter.Done()
		s.filter = nil
	}
	if s.inner != nil {
		s.inner.Done()
		s.inner = nil
	}
	w, read, broken := s.watcher, s.read, s.broken
	var zero C
	s.hc, s.cc, s.br, s.body, s.failures = nil, zero, nil, nil, nil
	s.watcher, s.broken = nil, nil
	s.read, s.eof, s.failed, s.limit, s.chunked = 0, false, false, 0, false
	// The watcher hears first: until StreamDone returns, s is not reused,
	// so a Stop through it reaches this stream or none.
	if w != nil {
		w.StreamDone(read, broken)
	}
	s.stopped.Store(false)
	streamPool.Put(s)
	return nil
}

// writeStreaming sends a request whose body is a stream (a large or
// chunked upload), refreshing the write deadline on every write so a long
// upload that keeps moving is not cut off by the whole-request timeout.
func (t *transport) writeStreaming(conn net.Conn, req *fasthttp.Request) error {
	w, _ := writerPool.Get().(*deadlineWriter)
	if w == nil {
		w = &deadlineWriter{}
		w.bw = bufio.NewWriterSize(w, 32<<10)
	}
	w.conn, w.timeout = conn, t.writeTimeout
	w.bw.Reset(w)
	err := req.Write(w.bw)
	if err == nil {
		err = w.bw.Flush()
	}
	w.conn = nil
	writerPool.Put(w)
	return err
}

type deadlineWriter struct {
	conn    net.Conn
	timeout time.Duration
	bw      *bufio.Writer
}

var writerPool sync.Pool

func (w *deadlineWriter) Write(p []byte) (int, error) {
	if w.timeout > 0 {
		_ = w.conn.SetWriteDeadline(time.Now().Add(w.timeout))
	}
	return w.conn.Write(p)
}

// readHead reads the status line and headers. It skips interim 1xx
// responses, and reports doubt (the connection must not be reused) for any
// but 100 Continue: sluice does not relay 102 Processing or 103 Early
// Hints, and an upstream that sends interim responses sluice does not
// understand is not one whose next bytes it should trust to be the next
// client's answer. A 101 ends the exchange with ErrSwitchingProtocols.
func readHead(resp *fasthttp.Response, br *bufio.Reader) (doubt bool, err error) {
	for n := 0; ; n++ {
		if err := resp.Header.Read(br); err != nil {
			if n == 0 {
				return true, upstreamReadError(err)
			}
			return true, err // it had answered (1xx) before it failed
		}
		switch code := resp.StatusCode(); {
		case code == fasthttp.StatusSwitchingProtocols:
			return true, ErrSwitchingProtocols
		case code < 100 || code > 199:
			return doubt, nil
		case code != fasthttp.StatusContinue:
			doubt = true
		}
		if n >= 8 {
			return true, errTooManyInterim
		}
	}
}

// upstreamReadError names the case where a connection closed before any
// byte of a response arrived.
func upstreamReadError(err error) error {
	var nothing fasthttp.ErrNothingRead
	if isTLSError(err) || errors.As(err, &nothing) && strings.HasPrefix(err.Error(), "remote error: tls: ") {
		// A TLS 1.3 target that refuses sluice's client certificate (or
		// its lack of one) says so in an alert read here, after the
		// handshake seemed done: a TLS failure, not a closed connection.
		// fasthttp's ErrNothingRead does not unwrap, hence the text
		// (crypto/tls's "remote error" alerts, conn.go).
		return &tlsAlertError{err}
	}
	if errors.As(err, &nothing) || errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) {
		return ErrUpstreamClosed
	}
	return err
}

// noBody: RFC 9110 6.4.1, 1xx, 204 and 304 responses never carry content.
func noBody(code int) bool {
	return code < 200 || code == fasthttp.StatusNoContent || code == fasthttp.StatusNotModified
}

func earliest(now, deadline time.Time, d time.Duration) time.Time {
	if d <= 0 {
		return deadline
	}
	t := now.Add(d)
	if deadline.IsZero() || t.Before(deadline) {
		return t
	}
	return deadline
}
