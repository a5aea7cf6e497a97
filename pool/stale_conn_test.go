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

// closingServer answers the first request on each connection, then reads
// the next one and closes the connection without answering it: the client
// finds the connection quiet when it takes it from the pool, and only
// learns after sending that the upstream closed it (the race an idle
// check can't win: the upstream's close crossing the request on the wire).
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
				for n := 0; n < 2; n++ {
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
					if n == 0 {
						_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
					}
				}
			}(c)
		}
	}()
	return ln.Addr().String(), conns
}

func TestStaleKeepAliveConnectionRetriedOnlyWhenReplayable(t *testing.T) {
	addr, conns := closingServer(t)
	u, _ := url.Parse("http://" + addr)
	hc := newHostClient(u, Settings{ReadTimeout: 2 * time.Second, WriteTimeout: 2 * time.Second, MaxConns: 1, BufferBodyBytes: 1 << 20, HeaderBufferBytes: 8192}, nil, nil)

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
	stale := func() { // pool a connection the server will drop on its next request
		if err := send("GET", false); err != nil {
			t.Fatal(err)
		}
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
