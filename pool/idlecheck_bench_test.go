package pool

import (
	"net"
	"net/url"
	"testing"
	"time"

	"github.com/sluicegw/sluice/bench/stub"
	"github.com/sluicegw/sluice/internal/testutil"
	"github.com/valyala/fasthttp"
)

// quietConn is a dialed (wrapped) loopback connection with nothing to read.
func quietConn(tb testing.TB) net.Conn {
	ln := testutil.Listen(tb)
	tb.Cleanup(func() { ln.Close() })
	go func() {
		c, err := ln.Accept()
		if err == nil {
			tb.Cleanup(func() { c.Close() })
		}
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	return wrapConn(c)
}

// BenchmarkCheckIdle is what the idle check adds to a request sent on a
// reused connection: one recvfrom(MSG_PEEK|MSG_DONTWAIT) through
// RawConn.Read.
//
//	go test ./pool -run '^$' -bench CheckIdle -benchmem
func BenchmarkCheckIdle(b *testing.B) {
	c := quietConn(b)
	b.ReportAllocs()
	for b.Loop() {
		if s := checkIdle(c); s != idleQuiet {
			b.Fatalf("state %s", s)
		}
	}
}

// BenchmarkRoundTripReused is a whole exchange on a reused keep-alive
// connection (small answer, buffered), for scale next to CheckIdle.
func BenchmarkRoundTripReused(b *testing.B) {
	up := testutil.StartUpstream(b, stub.Options{Name: "b", BodySize: 64})
	u, _ := url.Parse(up.URL)
	hc := newHostClient(u, Settings{ReadTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second, MaxConns: 1,
		BufferBodyBytes: 64 << 10, HeaderBufferBytes: 16 << 10}, nil, nil)
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	req.SetRequestURI(up.URL + "/x")
	if err := hc.Do(req, resp); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := hc.Do(req, resp); err != nil || resp.StatusCode() != 200 {
			b.Fatal(resp.StatusCode(), err)
		}
	}
}
