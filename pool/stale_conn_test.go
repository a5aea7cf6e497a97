package pool

import (
	"bufio"
	"io"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// closingServer answers one request per connection, keeps the connection
// open a moment (so the client pools it), then closes it without saying so:
// the client's next request on it finds a stale connection.
func closingServer(t *testing.T) (addr string, conns *atomic.Int64) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	conns = &atomic.Int64{}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			go func(c net.Conn) {
				defer c.Close()
				br := bufio.NewReader(c)
				cl := 0
				for {
					line, err := br.ReadString('\n')
					if err != nil {
						return
					}
					if v, ok := strings.CutPrefix(strings.ToLower(line), "content-length:"); ok {
						cl, _ = strconv.Atoi(strings.TrimSpace(v))
					}
					if line == "\r\n" {
						break
					}
				}
				_, _ = io.CopyN(io.Discard, br, int64(cl))
				_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
				time.Sleep(30 * time.Millisecond)
			}(c)
		}
	}()
	return ln.Addr().String(), conns
}

func TestStaleKeepAliveConnectionRetriedOnlyWhenReplayable(t *testing.T) {
	addr, conns := closingServer(t)
	u, _ := url.Parse("http://" + addr)
	hc := newHostClient(u, Settings{ReadTimeout: 2 * time.Second, WriteTimeout: 2 * time.Second, MaxConns: 1, BufferBodyBytes: 1 << 20, HeaderBufferBytes: 8192})

	send := func(method string, stream bool) error {
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		defer fasthttp.ReleaseRequest(req)
		defer fasthttp.ReleaseResponse(resp)
		req.SetRequestURI("http://" + addr + "/x")
		req.Header.SetMethod(method)
		if stream {
			req.SetBodyStream(strings.NewReader("streamed"), -1)
		} else if method != "GET" {
			req.SetBodyString("buffered")
		}
		err := hc.Do(req, resp)
		if err == nil && string(resp.Body()) != "ok" {
			t.Fatalf("%s: body %q", method, resp.Body())
		}
		return err
	}
	stale := func() { // pool a connection, then let the server drop it
		if err := send("GET", false); err != nil {
			t.Fatal(err)
		}
		time.Sleep(80 * time.Millisecond)
	}

	stale()
	if err := send("GET", false); err != nil {
		t.Fatalf("GET on a stale connection must be retried on a new one: %v", err)
	}
	stale()
	if err := send("PUT", false); err != nil {
		t.Fatalf("PUT with a buffered body must be retried: %v", err)
	}
	stale()
	if err := send("PUT", true); err == nil {
		t.Fatal("a PUT whose streamed body was consumed was sent again (as an empty body)")
	}
	stale()
	if err := send("POST", false); err == nil {
		t.Fatal("a POST was sent twice")
	}
	t.Logf("%d connections", conns.Load())
}
