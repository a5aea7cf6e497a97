package testutil

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// Raw HTTP/1.1 on both sides of a proxy, for conformance tests and fuzzing:
// RawUpstream is an origin that records exactly what each request looked
// like on the wire and whether its framing held; RawDo is a client that
// writes arbitrary bytes and reports what came back and how the connection
// ended (closed, reset, still open).

// UpstreamRequest is one request a RawUpstream read, as net/http parsed
// its head, with the body framed by the upstream itself (Content-Length or
// chunked, RFC 9112 section 6) so that a short or overlong body shows.
type UpstreamRequest struct {
	Seq      int // 1-based, in the order heads arrived, over all connections
	Conn     int // 1-based connection number
	RawHead  string
	Method   string
	Target   string // the request-target exactly as sent
	Proto    string
	Host     string
	Header   http.Header
	Chunked  bool
	Length   int64 // declared Content-Length; -1 when chunked or absent
	Body     []byte
	Complete bool   // the body arrived whole, as its framing said
	Problem  string // why not complete, or what was wrong with the head's framing
}

// HeaderValues returns the values of every header named name, compared
// case-insensitively (net/http only canonicalises names made of token
// characters it knows, so "X_Api_Key" keeps its own case).
func (r *UpstreamRequest) HeaderValues(name string) []string {
	var out []string
	for k, v := range r.Header {
		if strings.EqualFold(k, name) {
			out = append(out, v...)
		}
	}
	return out
}

// HasHeader reports whether a header named name arrived (case-insensitive).
func (r *UpstreamRequest) HasHeader(name string) bool { return len(r.HeaderValues(name)) > 0 }

// RawUpstream is an HTTP/1.1 origin on a loopback port that records every
// request it reads and every byte that did not parse as one. Responses
// come from Handler (200 "ok" when nil) and always carry X-Upstream-Seq,
// the request's Seq, so a client can tell an upstream answer from one the
// proxy made itself. Quiesce tells when it has read everything sent to it.
type RawUpstream struct {
	Addr    string
	URL     string
	Handler http.Handler

	ln         *net.TCPListener
	acceptIdle atomic.Uint64 // accept polls that found no connection waiting
	accepting  atomic.Bool   // false between an accept and the start of the connection's reader

	mu      sync.Mutex
	reqs    []UpstreamRequest
	faults  []string
	nconns  int
	open    map[*rawConn]struct{}
	wg      sync.WaitGroup
	stopped bool
}

// rawConn is an upstream connection whose reads poll: a read that finds
// nothing within rawPoll counts as idle and reads again, so Quiesce can
// tell "nothing left to read" from "not read yet".
type rawConn struct {
	net.Conn
	n    int
	idle atomic.Uint64 // polls that found the receive queue empty
	busy atomic.Bool   // bytes arrived that are not a whole request yet
}

const rawPoll = time.Millisecond

func (c *rawConn) Read(b []byte) (int, error) {
	for {
		_ = c.SetReadDeadline(time.Now().Add(rawPoll))
		n, err := c.Conn.Read(b)
		var ne net.Error
		if n == 0 && errors.As(err, &ne) && ne.Timeout() {
			c.idle.Add(1)
			continue
		}
		if n > 0 {
			c.busy.Store(true)
		}
		return n, err
	}
}

// UpstreamSeqHeader is set on every RawUpstream response.
const UpstreamSeqHeader = "X-Upstream-Seq"

// rawMaxHead bounds one request head at the upstream.
const rawMaxHead = 1 << 20

// StartRawUpstream runs a RawUpstream on a free loopback port until the
// test ends. h may be nil.
func StartRawUpstream(t testing.TB, h http.Handler) *RawUpstream {
	t.Helper()
	ln := Listen(t).(*net.TCPListener)
	u := &RawUpstream{Addr: ln.Addr().String(), Handler: h, ln: ln, open: map[*rawConn]struct{}{}}
	u.URL = "http://" + u.Addr
	u.wg.Add(1)
	go u.accept()
	t.Cleanup(u.Close)
	return u
}

// Close stops the upstream and closes its connections.
func (u *RawUpstream) Close() {
	u.mu.Lock()
	if u.stopped {
		u.mu.Unlock()
		return
	}
	u.stopped = true
	_ = u.ln.Close()
	for c := range u.open {
		_ = c.Close()
	}
	u.mu.Unlock()
	u.wg.Wait()
}

// Requests returns a copy of every request read so far.
func (u *RawUpstream) Requests() []UpstreamRequest {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]UpstreamRequest(nil), u.reqs...)
}

// Count is how many request heads have arrived.
func (u *RawUpstream) Count() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.reqs)
}

// Faults returns the bytes that did not parse as a request (with the
// parser's error), oldest first.
func (u *RawUpstream) Faults() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]string(nil), u.faults...)
}

// Conns is how many connections the upstream accepted.
func (u *RawUpstream) Conns() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.nconns
}

// Quiesce waits until the upstream has read and answered everything sent
// to it before the call: the listener and every connection have twice
// been found with nothing waiting since. It returns the connections that
// hold part of a request then (a sender that stopped mid-request), and an
// error if that did not happen within timeout.
func (u *RawUpstream) Quiesce(timeout time.Duration) (partial []string, err error) {
	startAccept := u.acceptIdle.Load()
	start := map[*rawConn]uint64{}
	u.mu.Lock()
	for c := range u.open {
		start[c] = c.idle.Load()
	}
	u.mu.Unlock()
	deadline := time.Now().Add(timeout)
	for {
		quiet := u.accepting.Load() && u.acceptIdle.Load() >= startAccept+2
		partial = partial[:0]
		u.mu.Lock()
		for c := range u.open {
			base, ok := start[c]
			if !ok { // a connection accepted since the call: from its start
				start[c], base = 0, 0
			}
			if c.idle.Load() < base+2 {
				quiet = false
			}
			if c.busy.Load() {
				partial = append(partial, fmt.Sprintf("conn %d holds part of a request", c.n))
			}
		}
		u.mu.Unlock()
		if quiet {
			return partial, nil
		}
		if time.Now().After(deadline) {
			return partial, fmt.Errorf("upstream still reading after %v", timeout)
		}
		time.Sleep(rawPoll / 2)
	}
}

func (u *RawUpstream) accept() {
	defer u.wg.Done()
	for {
		u.accepting.Store(true)
		_ = u.ln.SetDeadline(time.Now().Add(rawPoll))
		nc, err := u.ln.Accept()
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			u.acceptIdle.Add(1)
			continue
		}
		u.accepting.Store(false)
		if err != nil {
			return
		}
		u.mu.Lock()
		if u.stopped {
			u.mu.Unlock()
			_ = nc.Close()
			return
		}
		u.nconns++
		c := &rawConn{Conn: nc, n: u.nconns}
		u.open[c] = struct{}{}
		u.wg.Add(1)
		u.mu.Unlock()
		go u.serve(c)
	}
}

func (u *RawUpstream) fault(format string, args ...any) {
	u.mu.Lock()
	u.faults = append(u.faults, fmt.Sprintf(format, args...))
	u.mu.Unlock()
}

func (u *RawUpstream) serve(c *rawConn) {
	defer u.wg.Done()
	defer func() {
		u.mu.Lock()
		delete(u.open, c)
		u.mu.Unlock()
		_ = c.Close()
	}()
	conn := c.n
	br := bufio.NewReaderSize(c, 64<<10)
	for {
		head, err := readHead(br)
		if err != nil {
			if len(head) > 0 || !errors.Is(err, io.EOF) {
				if !u.isStopped() {
					u.fault("conn %d: %d bytes that are not a request head (%v): %q", conn, len(head), err, clip(head))
				}
			}
			return
		}
		r := UpstreamRequest{Conn: conn, RawHead: string(head), Length: -1}
		req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(head)))
		if err != nil {
			u.fault("conn %d: head net/http refuses (%v): %q", conn, err, clip(head))
			return
		}
		r.Method, r.Target, r.Proto, r.Host, r.Header = req.Method, req.RequestURI, req.Proto, req.Host, req.Header
		r.Problem = framingProblem(head)
		// net/http drops Content-Length when chunked; the raw head is checked above.
		r.Chunked = len(req.TransferEncoding) > 0
		if !r.Chunked {
			if cl := req.Header.Get("Content-Length"); cl != "" {
				r.Length = req.ContentLength
			}
		}
		u.mu.Lock()
		r.Seq = len(u.reqs) + 1
		u.reqs = append(u.reqs, r)
		idx := len(u.reqs) - 1
		u.mu.Unlock()

		body, berr := readFramedBody(br, r.Chunked, r.Length)
		u.mu.Lock()
		u.reqs[idx].Body = body
		u.reqs[idx].Complete = berr == nil && r.Problem == ""
		if berr != nil {
			if u.reqs[idx].Problem != "" {
				u.reqs[idx].Problem += "; "
			}
			u.reqs[idx].Problem += "body: " + berr.Error()
		}
		r = u.reqs[idx]
		u.mu.Unlock()
		if berr != nil {
			return // the rest of the stream can't be framed
		}
		ok := u.respond(c, req, &r)
		if br.Buffered() == 0 {
			c.busy.Store(false)
		}
		if !ok || req.Close {
			// After a response with Connection: close, whatever else arrives
			// is left over.
			if rest, _ := io.ReadAll(io.LimitReader(br, 1<<16)); len(rest) > 0 && !u.isStopped() {
				u.fault("conn %d: %d bytes after a request marked close: %q", conn, len(rest), clip(rest))
			}
			return
		}
	}
}

func (u *RawUpstream) isStopped() bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.stopped
}

// readHead reads up to and including the blank line that ends a request
// head (CRLF or bare LF line ends).
func readHead(br *bufio.Reader) ([]byte, error) {
	var head []byte
	for {
		line, err := br.ReadSlice('\n')
		head = append(head, line...)
		if err == bufio.ErrBufferFull {
			if len(head) > rawMaxHead {
				return head, errors.New("head too large")
			}
			continue
		}
		if err != nil {
			if err == io.EOF && len(head) > 0 {
				err = io.ErrUnexpectedEOF
			}
			return head, err
		}
		if string(line) == "\r\n" || string(line) == "\n" {
			if len(head) == len(line) {
				return head, errors.New("blank line before a request line")
			}
			return head, nil
		}
		if len(head) > rawMaxHead {
			return head, errors.New("head too large")
		}
	}
}

// framingProblem reports a request head a proxy must never send: both
// Content-Length and Transfer-Encoding, more than one Content-Length, a
// Transfer-Encoding other than a single "chunked", or an obsolete line
// fold (RFC 9112 sections 5.2, 6.1, 6.3).
func framingProblem(head []byte) string {
	lines := strings.Split(strings.TrimRight(string(head), "\r\n"), "\n")
	var cl, te []string
	for i, l := range lines {
		l = strings.TrimSuffix(l, "\r")
		if i == 0 {
			continue
		}
		if l != "" && (l[0] == ' ' || l[0] == '\t') {
			return "obsolete line folding sent upstream"
		}
		name, value, ok := strings.Cut(l, ":")
		if !ok {
			continue
		}
		switch strings.ToLower(name) {
		case "content-length":
			cl = append(cl, strings.TrimSpace(value))
		case "transfer-encoding":
			te = append(te, strings.TrimSpace(value))
		}
	}
	switch {
	case len(cl) > 0 && len(te) > 0:
		return "both Content-Length and Transfer-Encoding sent upstream"
	case len(cl) > 1:
		return "more than one Content-Length sent upstream"
	case len(te) > 1 || len(te) == 1 && !strings.EqualFold(te[0], "chunked"):
		return fmt.Sprintf("Transfer-Encoding %q sent upstream", te)
	case len(cl) == 1:
		if _, err := strconv.ParseUint(cl[0], 10, 63); err != nil {
			return fmt.Sprintf("Content-Length %q sent upstream", cl[0])
		}
	}
	return ""
}

// readFramedBody reads exactly the body the framing announces, leaving br
// at the next request.
func readFramedBody(br *bufio.Reader, chunked bool, length int64) ([]byte, error) {
	if chunked {
		// httputil's reader uses br directly (no read-ahead) and stops after
		// the last chunk's size line; the trailer section follows.
		body, err := io.ReadAll(httputil.NewChunkedReader(br))
		if err != nil {
			return body, fmt.Errorf("chunked: %w", err)
		}
		for {
			line, err := br.ReadSlice('\n')
			if err != nil {
				return body, fmt.Errorf("trailer: %w", err)
			}
			if string(line) == "\r\n" {
				return body, nil
			}
		}
	}
	if length <= 0 {
		return nil, nil
	}
	body := make([]byte, length)
	n, err := io.ReadFull(br, body)
	if err != nil {
		return body[:n], fmt.Errorf("content-length %d, got %d bytes: %w", length, n, err)
	}
	return body, nil
}

// respond answers with Handler and reports whether the connection stays
// open.
func (u *RawUpstream) respond(c net.Conn, req *http.Request, r *UpstreamRequest) bool {
	w := &rawResponse{header: http.Header{}}
	if u.Handler != nil {
		req.Body = io.NopCloser(bytes.NewReader(r.Body))
		req.ContentLength = int64(len(r.Body))
		req.RemoteAddr = c.RemoteAddr().String()
		u.Handler.ServeHTTP(w, req)
	} else {
		_, _ = w.Write([]byte("ok"))
	}
	if w.status == 0 {
		w.status = http.StatusOK
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "HTTP/1.1 %d %s\r\n", w.status, http.StatusText(w.status))
	w.header.Del("Content-Length")
	w.header.Del("Transfer-Encoding")
	w.header.Set(UpstreamSeqHeader, strconv.Itoa(r.Seq))
	if req.Close {
		w.header.Set("Connection", "close")
	}
	_ = w.header.Write(&b)
	bodyless := req.Method == http.MethodHead || w.status == http.StatusNoContent || w.status == http.StatusNotModified
	if !bodyless {
		fmt.Fprintf(&b, "Content-Length: %d\r\n", w.body.Len())
	}
	b.WriteString("\r\n")
	if !bodyless {
		b.Write(w.body.Bytes())
	}
	_ = c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, err := c.Write(b.Bytes())
	return err == nil
}

type rawResponse struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (w *rawResponse) Header() http.Header { return w.header }
func (w *rawResponse) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
}
func (w *rawResponse) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.body.Write(p)
}

func clip(b []byte) []byte {
	if len(b) > 200 {
		return b[:200]
	}
	return b
}

// RawOptions say how RawDo talks to the server.
type RawOptions struct {
	// Timeout bounds the whole exchange. Default 5s.
	Timeout time.Duration
	// HalfClose shuts the write side after the request, so that the
	// server reads EOF next.
	HalfClose bool
	// Flood is how long to keep sending filler ('x') after the request,
	// as a client that has not noticed an early answer yet would. A
	// server that stops reading and closes resets the connection, and a
	// write fails (RawResult.WriteErr); one that lingers reads it all.
	Flood time.Duration
	// ReadAfterWrite starts reading only when every byte was written (or
	// writing failed), as a client that sends its whole request before
	// looking at the answer does: then an early answer followed by a
	// close with unread bytes (a TCP reset) can be lost before it is read.
	ReadAfterWrite bool
	// Responses: stop reading once this many responses have arrived and
	// the server has not closed within Linger (0: read until the server
	// closes or Timeout).
	Responses int
	// Linger is how long to wait for a close after Responses arrived,
	// when the last of them says "Connection: close" (a server that means
	// to close says so, RFC 9112 9.6); otherwise 50ms. Default 300ms.
	Linger time.Duration
}

// RawResult is what came back from a RawDo.
type RawResult struct {
	Data      []byte           // every byte read
	Responses []*http.Response // parsed from Data, bodies read into Bodies
	Bodies    []string
	ParseErr  error         // Data had bytes that are not a response
	Closed    bool          // the server closed the connection (EOF)
	Reset     bool          // the read ended in a connection reset
	TimedOut  bool          // Timeout passed before the exchange ended
	Elapsed   time.Duration // from the first write to the end of reading
	ReadErr   error
	WriteErr  error // the first write error, if any
}

// Status is the first final (non-1xx) response's status, or 0 when there
// was none.
func (r RawResult) Status() int {
	for _, resp := range r.Responses {
		if resp.StatusCode >= 200 {
			return resp.StatusCode
		}
	}
	return 0
}

// Summary is a one-line account of the exchange for failure messages.
func (r RawResult) Summary() string {
	var b strings.Builder
	for i, resp := range r.Responses {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%d %q", resp.StatusCode, strings.TrimSpace(clipString(r.Bodies[i], 80)))
	}
	if len(r.Responses) == 0 {
		b.WriteString("no response")
	}
	switch {
	case r.Reset:
		b.WriteString("; connection reset")
	case r.Closed:
		b.WriteString("; closed")
	case r.TimedOut:
		b.WriteString("; timed out")
	default:
		b.WriteString("; left open")
	}
	if r.ParseErr != nil {
		fmt.Fprintf(&b, "; unparsable response bytes (%v)", r.ParseErr)
	}
	return b.String()
}

func clipString(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

// RawDo writes req to a new connection to addr and reads what comes back,
// as RawOptions say. It never fails the test on a network error: those
// are part of the result.
func RawDo(t testing.TB, addr string, req []byte, o RawOptions) RawResult {
	t.Helper()
	if o.Timeout == 0 {
		o.Timeout = 5 * time.Second
	}
	if o.Linger == 0 {
		o.Linger = 300 * time.Millisecond
	}
	c, err := net.DialTimeout("tcp", addr, o.Timeout)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	deadline := start.Add(o.Timeout)
	_ = c.SetDeadline(deadline)
	var res RawResult
	var wmu sync.Mutex
	var werr error
	writes := make(chan struct{})
	go func() {
		defer close(writes)
		_, err := c.Write(req)
		if err == nil && o.Flood > 0 {
			chunk := bytes.Repeat([]byte("x"), 4096)
			for end := time.Now().Add(o.Flood); err == nil && time.Now().Before(end); {
				_, err = c.Write(chunk)
				time.Sleep(time.Millisecond)
			}
		}
		if err == nil && o.HalfClose {
			if tc, ok := c.(*net.TCPConn); ok {
				err = tc.CloseWrite()
			}
		}
		wmu.Lock()
		werr = err
		wmu.Unlock()
	}()
	if o.ReadAfterWrite {
		<-writes
	}
	buf := make([]byte, 32<<10)
	for {
		resps, _, _ := ParseResponses(res.Data)
		lingering := o.Responses > 0 && len(resps) >= o.Responses
		if lingering {
			// Enough answers: give the server a moment to close.
			wait := 50 * time.Millisecond
			if resps[len(resps)-1].Close {
				wait = o.Linger
			}
			_ = c.SetReadDeadline(minTime(deadline, time.Now().Add(wait)))
		}
		n, err := c.Read(buf)
		res.Data = append(res.Data, buf[:n]...)
		if err != nil {
			classify(&res, err, !lingering)
			break
		}
	}
	res.Elapsed = time.Since(start)
	// Unblock the writer and wait for it (with ReadAfterWrite it is done
	// already; a closed channel receives at once).
	_ = c.SetDeadline(time.Now())
	<-writes
	wmu.Lock()
	res.WriteErr = werr
	wmu.Unlock()
	res.Responses, res.Bodies, res.ParseErr = ParseResponses(res.Data)
	return res
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

func classify(res *RawResult, err error, timeoutIsFailure bool) {
	var ne net.Error
	switch {
	case errors.Is(err, io.EOF):
		res.Closed = true
	case errors.Is(err, syscall.ECONNRESET):
		res.Reset = true
		res.ReadErr = err
	case errors.As(err, &ne) && ne.Timeout():
		res.TimedOut = timeoutIsFailure
	default:
		res.ReadErr = err
	}
}

// ParseResponses reads consecutive HTTP/1.x responses from data, bodies
// included. It stops at the first bytes that are not a complete response
// and returns their error (nil when data ends cleanly after a response).
func ParseResponses(data []byte) ([]*http.Response, []string, error) {
	return ParseResponsesFor(data, nil)
}

// ParseResponsesFor is ParseResponses for answers to requests with these
// methods, in order (a response to HEAD has no body whatever its
// Content-Length says); past the end of methods, GET is assumed. Interim
// 1xx responses are returned too but use up no method.
func ParseResponsesFor(data []byte, methods []string) ([]*http.Response, []string, error) {
	br := bufio.NewReader(bytes.NewReader(data))
	var out []*http.Response
	var bodies []string
	final := 0
	for {
		if _, err := br.Peek(1); err == io.EOF {
			return out, bodies, nil
		}
		method := http.MethodGet
		if final < len(methods) {
			method = methods[final]
		}
		resp, err := http.ReadResponse(br, &http.Request{Method: method})
		if err != nil {
			return out, bodies, err
		}
		b, err := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if err != nil {
			return out, bodies, err
		}
		out = append(out, resp)
		bodies = append(bodies, string(b))
		if resp.StatusCode >= 200 {
			final++
		}
		if resp.Close {
			if rest, _ := io.ReadAll(br); len(rest) > 0 {
				return out, bodies, fmt.Errorf("%d bytes after a response marked close", len(rest))
			}
			return out, bodies, nil
		}
	}
}
