package pool

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/sluicegw/sluice/bench/stub"
	"github.com/sluicegw/sluice/internal/testutil"
	"github.com/valyala/fasthttp"
)

// Regression tests for issue #13 section 1: an upstream that writes more
// than its answer (or closes) on a keep-alive connection must not make the
// next request on that connection read the wrong answer. The end-to-end
// suite with many concurrent clients is edge/hostile_upstream_test.go.

// oneConnClient is a HostClient to h with a single connection, so every
// request after the first reuses it unless the transport refuses to.
func oneConnClient(t *testing.T, h *testutil.Hostile, bufferResponse int) *fasthttp.HostClient {
	t.Helper()
	u, _ := url.Parse(h.URL)
	return newHostClient(u, Settings{ReadTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second, MaxConns: 1,
		MaxConnWait: 5 * time.Second, BufferBodyBytes: bufferResponse, HeaderBufferBytes: 16 << 10}, nil, nil)
}

type answerSeen struct {
	status int
	tag    string
	body   string
}

func send(t *testing.T, hc *fasthttp.HostClient, method, tag string) (answerSeen, error) {
	t.Helper()
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI("http://" + hc.Addr + tag)
	req.Header.SetMethod(method)
	req.SetTimeout(5 * time.Second)
	err := hc.Do(req, resp)
	return answerSeen{resp.StatusCode(), string(resp.Header.Peek("X-Tag")), string(resp.Body())}, err
}

// An upstream answered completely, then wrote a second, unsolicited
// response on the idle connection. The next request must get its own
// answer, on another connection.
func TestLateUnsolicitedResponseIsNotTheNextAnswer(t *testing.T) {
	h := testutil.StartHostile(t, testutil.LateResponse)
	hc := oneConnClient(t, h, 64<<10)
	for i, tag := range []string{"/first", "/second", "/third"} {
		got, err := send(t, hc, "GET", tag)
		if err != nil || got.tag != tag || got.body != tag {
			t.Fatalf("request %s: got %+v, %v", tag, got, err)
		}
		if n := h.InjectIdle(); n != 1 {
			t.Fatalf("injected into %d idle connections, want 1", n)
		}
		if c := h.Conns(); c != int64(i+1) {
			t.Fatalf("after %d requests the upstream saw %d connections: a connection with unread bytes was reused", i+1, c)
		}
	}
	if r := h.Raced(); r != 0 {
		t.Errorf("%d requests were sent on a connection holding an unsolicited response", r)
	}
}

// Bytes that came with the answer but past its end (a second response, an
// over-long body, a body on HEAD or 204), or an interim response sluice
// does not relay, close the connection: each request gets its own answer
// on a new one. 100 Continue is harmless and the connection is kept.
func TestFramingDoubtClosesTheConnection(t *testing.T) {
	cases := []struct {
		name    string
		script  testutil.HostileScript
		method  string
		status  int
		reuse   bool
		hasBody bool
	}{
		{"second response in the same write", testutil.ExtraResponse, "GET", 200, false, true},
		{"body longer than Content-Length (RFC 9112 6.3)", testutil.OverlongBody, "GET", 200, false, true},
		{"HEAD answered with a body (RFC 9110 9.3.2)", testutil.HeadWithBody, "HEAD", 200, false, false},
		{"204 with Content-Length and a body (RFC 9110 15.3.5)", testutil.NoContentWithBody, "GET", 204, false, false},
		{"103 Early Hints before the answer (RFC 8297)", testutil.EarlyHints, "GET", 200, false, true},
		{"100 Continue before the answer (RFC 9110 15.2.1)", testutil.Continue, "GET", 200, true, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := testutil.StartHostile(t, c.script)
			hc := oneConnClient(t, h, 64<<10)
			for _, tag := range []string{"/one", "/two", "/three"} {
				got, err := send(t, hc, c.method, tag)
				want := answerSeen{c.status, tag, ""}
				if c.hasBody {
					want.body = tag
				}
				if err != nil || got != want {
					t.Fatalf("%s %s: got %+v, %v; want %+v", c.method, tag, got, err, want)
				}
			}
			wantConns := int64(3)
			if c.reuse {
				wantConns = 1
			}
			if n := h.Conns(); n != wantConns {
				t.Errorf("3 requests used %d connections, want %d", n, wantConns)
			}
		})
	}
}

// An upstream that closes or resets each connection after its answer: a
// GET is never failed for it (the closed idle connection is seen before
// use, or the request is sent again once on a new connection).
func TestClosedIdleConnectionIsReplacedNotFailed(t *testing.T) {
	for _, script := range []testutil.HostileScript{testutil.CloseAfter, testutil.ResetAfter} {
		h := testutil.StartHostile(t, script)
		hc := oneConnClient(t, h, 64<<10)
		for i := 0; i < 50; i++ {
			tag := "/r" + string(rune('a'+i%26))
			got, err := send(t, hc, "GET", tag)
			if script == testutil.ResetAfter && err != nil {
				// A reset that overtakes the answer on the way loses it
				// (the kernel drops unread data on RST): a failure, but
				// never another request's answer.
				continue
			}
			if err != nil || got.tag != tag || got.body != tag {
				t.Fatalf("script %d request %d: got %+v, %v", script, i, got, err)
			}
		}
	}
}

// A POST can't be sent twice, so it must not go out on an idle connection
// the upstream has already closed: the idle check sees the EOF first and
// takes a new connection.
func TestClosedIdleConnectionIsSeenBeforeSending(t *testing.T) {
	h := testutil.StartHostile(t, testutil.CloseAfter)
	hc := oneConnClient(t, h, 64<<10)
	for i, tag := range []string{"/a", "/b", "/c"} {
		testutil.WaitFor(t, "the upstream to close its connections", func() bool { return h.Open() == 0 })
		got, err := send(t, hc, "POST", tag)
		if err != nil || got.tag != tag {
			t.Fatalf("POST %s: %+v, %v", tag, got, err)
		}
		if r := h.Requests(); r != int64(i+1) {
			t.Fatalf("%d POSTs reached the upstream, want %d", r, i+1)
		}
	}
}

// RFC 9110 15.2.2: sluice never asks for an upgrade, so a 101 can't be
// passed on; it is an error and the connection is closed.
func TestSwitchingProtocolsIsAnError(t *testing.T) {
	h := testutil.StartHostile(t, testutil.SwitchProtocols)
	hc := oneConnClient(t, h, 64<<10)
	for i := 0; i < 2; i++ {
		_, err := send(t, hc, "GET", "/ws")
		if !errors.Is(err, ErrSwitchingProtocols) || Classify(err) != KindProtocol {
			t.Fatalf("err = %v (kind %s), want ErrSwitchingProtocols, a protocol error", err, Classify(err))
		}
	}
	if n := h.Conns(); n != 2 {
		t.Errorf("2 requests used %d connections: the switched connection was reused", n)
	}
}

// A chunked body whose first chunk size is malformed (RFC 9112 7.1) is an
// error before anything is handed on, so the proxy can answer 502.
func TestInvalidFirstChunkIsAnError(t *testing.T) {
	h := testutil.StartHostile(t, testutil.BadChunkStart)
	hc := oneConnClient(t, h, 64<<10)
	_, err := send(t, hc, "GET", "/c")
	if !errors.Is(err, ErrInvalidChunked) || Classify(err) != KindProtocol {
		t.Fatalf("err = %v, want ErrInvalidChunked", err)
	}
}

func TestChunkSizeLineBroken(t *testing.T) {
	cases := map[string]bool{
		"":                      false, // nothing has arrived: don't wait for it
		"1a":                    false, // not all here yet
		"1a\r":                  false,
		"1a\r\nxxxxxxxx":        false,
		"1A;name=value\r\n":     false,
		"1a \t\r\n":             false,
		"0\r\n\r\n":             false,
		"zz\r\n":                true,
		"\r\n":                  true,
		"1a\n":                  true, // bare LF
		"1a\rx":                 true,
		"1a x\r\n":              true,
		"1a ;ext\r\n":           true, // fasthttp refuses whitespace before ';'
		"-5\r\n":                true,
		"1234567890abcdef\r\n":  true, // more digits than fasthttp parses
		"123456789abcdef\r\n":   false,
		"1a;ext\nsmuggled\r\n":  true,
		"not-a-size\r\n":        true,
		"4000\r\nccccccccc\r\n": false,
	}
	for in, want := range cases {
		br := newBufferedReader(in)
		if got := chunkSizeLineBroken(br); got != want {
			t.Errorf("%q: broken = %v, want %v", in, got, want)
		}
		if br.Buffered() != len(in) {
			t.Errorf("%q: the check consumed bytes", in)
		}
	}
}

// A body that breaks off after its head was returned (a malformed chunk
// midway, a connection closed before Content-Length bytes) fails the
// stream's Read with ErrStreamBroken and is counted on the target; a
// reader that stops early (a client hanging up) is not counted.
func TestBrokenStreamIsCountedOnTheTarget(t *testing.T) {
	for _, script := range []testutil.HostileScript{testutil.BadChunkMidway, testutil.TruncatedBody} {
		h := testutil.StartHostile(t, script)
		p := buildPool(t, []string{h.URL}, Settings{ReadTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second, MaxConns: 4,
			BufferBodyBytes: 64 << 10, HeaderBufferBytes: 16 << 10}, "round_robin", false)
		target := p.Targets[0]
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		req.SetRequestURI(h.URL + "/s")
		req.SetTimeout(5 * time.Second)
		if err := target.Client.Do(req, resp); err != nil || resp.StatusCode() != 200 || !resp.IsBodyStream() {
			t.Fatalf("script %d: want a streamed 200, got %d, %v", script, resp.StatusCode(), err)
		}
		n, err := io.Copy(io.Discard, resp.BodyStream())
		if !errors.Is(err, ErrStreamBroken) || n < testutil.MidwayBytes/2 {
			t.Errorf("script %d: read %d bytes, err %v; want some of the body, then ErrStreamBroken", script, n, err)
		}
		if err := resp.CloseBodyStream(); err != nil {
			t.Error(err)
		}
		if got := target.StreamFailures(); got != 1 {
			t.Errorf("script %d: StreamFailures = %d, want 1", script, got)
		}
		fasthttp.ReleaseRequest(req)
		fasthttp.ReleaseResponse(resp)
	}

	up := testutil.StartUpstream(t, stub.Options{Name: "big", BodySize: 1 << 20})
	p := buildPool(t, []string{up.URL}, Settings{ReadTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second, MaxConns: 4,
		BufferBodyBytes: 64 << 10, HeaderBufferBytes: 16 << 10}, "round_robin", false)
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI(up.URL + "/")
	if err := p.Targets[0].Client.Do(req, resp); err != nil || !resp.IsBodyStream() {
		t.Fatalf("want a streamed body: %v", err)
	}
	if _, err := io.ReadFull(resp.BodyStream(), make([]byte, 1024)); err != nil {
		t.Fatal(err)
	}
	_ = resp.CloseBodyStream() // the client hung up
	if got := p.Targets[0].StreamFailures(); got != 0 {
		t.Errorf("a reader that stopped early counted as %d stream failures", got)
	}
}

// The idle check itself, on a real socket: quiet, data (left in place),
// EOF, reset, and a read deadline that passed while the connection sat idle.
func TestCheckIdle(t *testing.T) {
	ln := testutil.Listen(t)
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	dial := func() (net.Conn, *net.TCPConn) {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		server := (<-accepted).(*net.TCPConn)
		t.Cleanup(func() { server.Close() })
		return wrapConn(c), server
	}
	waitFor := func(c net.Conn, want idleState) {
		t.Helper()
		testutil.WaitFor(t, "the idle check to see "+want.String(), func() bool { return checkIdle(c) == want })
	}

	c, server := dial()
	if s := checkIdle(c); s != idleQuiet {
		t.Fatalf("a fresh connection is %s", s)
	}
	_ = c.SetReadDeadline(time.Now().Add(-time.Second)) // passed while idle
	if s := checkIdle(c); s != idleQuiet {
		t.Fatalf("with an expired read deadline: %s", s)
	}
	_, _ = server.Write([]byte("HTTP/1.1 200 OK\r\n"))
	waitFor(c, idleData)
	b := make([]byte, 4)
	if _, err := io.ReadFull(c, b); err != nil || string(b) != "HTTP" {
		t.Fatalf("the peeked bytes were consumed: %q, %v", b, err)
	}

	c, server = dial()
	server.Close()
	waitFor(c, idleEOF)

	c, server = dial()
	_ = server.SetLinger(0)
	server.Close()
	waitFor(c, idleBroken)

	if s := checkIdle(&net.UnixConn{}); s != idleQuiet {
		t.Errorf("a connection sluice did not dial is %s, want quiet (unchecked)", s)
	}
}

// newBufferedReader holds all of s in its buffer, as if it had come with
// a response head.
func newBufferedReader(s string) *bufio.Reader {
	br := bufio.NewReader(strings.NewReader(s))
	if len(s) > 0 {
		_, _ = br.Peek(len(s))
	}
	return br
}
