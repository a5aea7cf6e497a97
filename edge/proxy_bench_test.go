package edge

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"fmt"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/sluicegw/sluice/bench/stub"
	"github.com/sluicegw/sluice/internal/testutil"
	"github.com/valyala/fasthttp"
)

// handlerHarness drives Gateway.ServeHTTP directly with a reused
// RequestCtx, against a real upstream on loopback: what it measures is the
// gateway's own work per request (routing, header rewriting, the upstream
// exchange), without a client or server socket on the front side.
type handlerHarness struct {
	gw     *Gateway
	ctx    fasthttp.RequestCtx
	method string // default GET
	path   string
	authz  string // Authorization header to send, if any
	extra  string // more header lines, each ending in \r\n
	tls    bool   // the connection claims to be TLS (ctx.IsTLS)
	conn   *addrConn
	raw    []byte // the request as sent
	src    bytes.Reader
	br     bufio.Reader
}

func newHandlerHarness(tb testing.TB, bodySize int, path string) *handlerHarness {
	return newHandlerHarnessWith(tb, bodySize, path, "", "")
}

// newHandlerHarnessWith adds config (top-level YAML) and route fields.
func newHandlerHarnessWith(tb testing.TB, bodySize int, path, extraConfig, routeExtra string) *handlerHarness {
	up := testutil.StartUpstream(tb, stub.Options{Name: "bench", BodySize: bodySize})
	gw, err := New(mustParse(tb, fmt.Sprintf(`
listen: 127.0.0.1:0
admin: { listen: "off" }
%s
upstreams:
  up: { targets: [ { url: "%s" } ] }
routes:
  - { name: api, match: { prefix: /api/ }, upstream: up, rewrite: { strip_prefix: /api },
      request_headers: { set: { X-Env: bench } }, response_headers: { set: { X-Served-By: sluice } } %s }
`, extraConfig, up.URL, routeExtra)), quietLogger(), "test")
	if err != nil {
		tb.Fatal(err)
	}
	h := &handlerHarness{gw: gw, path: path}
	h.conn = &addrConn{remote: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 50000}}
	return h
}

// addrConn is the connection a harness request claims to come from; only
// its addresses are ever read.
type addrConn struct {
	net.Conn
	remote net.Addr
}

func (c *addrConn) RemoteAddr() net.Addr { return c.remote }

// Deadlines are refreshed while bodies stream; there is no socket here.
func (c *addrConn) SetReadDeadline(time.Time) error  { return nil }
func (c *addrConn) SetWriteDeadline(time.Time) error { return nil }
func (c *addrConn) LocalAddr() net.Addr              { return c.remote }

// tlsConn is an addrConn that fasthttp takes for a TLS connection.
type tlsConn struct{ *addrConn }

func (tlsConn) Handshake() error { return nil }
func (tlsConn) ConnectionState() tls.ConnectionState {
	return tls.ConnectionState{HandshakeComplete: true}
}

func (h *handlerHarness) once(tb testing.TB, wantStatus int) {
	// The response first, as the server does: closing a streamed body
	// records the previous request, which must still be there.
	h.ctx.Response.Reset()
	var conn net.Conn = h.conn
	if h.tls {
		conn = tlsConn{h.conn}
	}
	h.ctx.Init2(conn, nil, false) // a new request: its own start time, as the server gives it
	h.ctx.Request.Reset()
	// Parsed from bytes, as the server does: the request has a raw header
	// block, like one read from a socket.
	if h.raw == nil {
		method := h.method
		if method == "" {
			method = "GET"
		}
		h.raw = []byte(method + " " + h.path + " HTTP/1.1\r\nHost: bench.local\r\nUser-Agent: bench\r\nAccept: */*\r\nX-Forwarded-For: 10.0.0.1\r\n" + h.extra)
		if h.authz != "" {
			h.raw = append(h.raw, "Authorization: "+h.authz+"\r\n"...)
		}
		h.raw = append(h.raw, "\r\n"...)
	}
	h.src.Reset(h.raw)
	h.br.Reset(&h.src)
	if err := h.ctx.Request.Read(&h.br); err != nil {
		tb.Fatal(err)
	}
	h.gw.ServeHTTP(&h.ctx)
	if h.ctx.Response.StatusCode() != wantStatus {
		tb.Fatalf("status %d, want %d: %s", h.ctx.Response.StatusCode(), wantStatus, h.ctx.Response.Body())
	}
}

// BenchmarkServeHTTP: one proxied request through the gateway handler.
//
//	go test ./edge -run '^$' -bench ServeHTTP -benchmem
func BenchmarkServeHTTP(b *testing.B) {
	for _, size := range []int{64, 1 << 10, 64 << 10} {
		b.Run(fmt.Sprintf("body=%d", size), func(b *testing.B) {
			newHandlerHarness(b, size, "/api/users/42?page=2").bench(b)
		})
	}
}

// bench runs the harness's request b.N times after one warm-up.
func (h *handlerHarness) bench(b *testing.B) {
	h.once(b, 200)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		h.once(b, 200)
	}
}

// observedVariants are the observability settings the benchmarks price:
// metrics off, metrics on (the default), and an access log line for
// every request on top.
func observedVariants(b *testing.B) []struct{ name, extra string } {
	return []struct{ name, extra string }{
		{"metrics=off", "metrics: { enabled: false }\n"},
		{"metrics=on", ""},
		{"metrics=on,access_log=all", "access_log: { enabled: true, output: " + filepath.Join(b.TempDir(), "access.log") + " }\n"},
	}
}

// BenchmarkProxyRoundTrip: a full round trip over loopback TCP — a
// fasthttp client, the sluice server, the stub upstream — with parallel
// clients. allocs/op covers all three (each allocation-free in steady
// state); compare ns/op with BenchmarkDirect to see what sluice adds.
//
//	go test ./edge -run '^$' -bench 'RoundTrip|Direct' -benchmem -cpu 1,2
//
// The sub-benchmarks price observability: metrics off, metrics on (the
// default), and metrics plus an access log line for every request.
func BenchmarkProxyRoundTrip(b *testing.B) {
	up := testutil.StartUpstream(b, stub.Options{Name: "bench", BodySize: 64})
	for _, c := range observedVariants(b) {
		b.Run(c.name, func(b *testing.B) {
			g := startGateway(b, c.extra+oneUpstream(up.URL, "  - { name: api, match: { prefix: /api/ }, upstream: up, rewrite: { strip_prefix: /api } }\n"))
			runClients(b, g.addr, "/api/users/42")
		})
	}
}

// BenchmarkServeHTTPObserved: the handler-level cost of observability,
// without sockets in front (less noise than the round trip).
//
//	go test ./edge -run '^$' -bench ServeHTTPObserved -benchmem -count 6
func BenchmarkServeHTTPObserved(b *testing.B) {
	for _, c := range observedVariants(b) {
		b.Run(c.name, func(b *testing.B) {
			newHandlerHarnessWith(b, 64, "/api/users/42", c.extra, "").bench(b)
		})
	}
}

// BenchmarkDirect: the same clients against the stub with no gateway.
func BenchmarkDirect(b *testing.B) {
	up := testutil.StartUpstream(b, stub.Options{Name: "bench", BodySize: 64})
	runClients(b, up.Addr, "/users/42")
}

func runClients(b *testing.B, addr, path string) {
	c := &fasthttp.HostClient{Addr: addr, MaxConns: 64, ReadTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second}
	url := "http://" + addr + path
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		defer fasthttp.ReleaseRequest(req)
		defer fasthttp.ReleaseResponse(resp)
		for pb.Next() {
			req.SetRequestURI(url)
			if err := c.Do(req, resp); err != nil || resp.StatusCode() != 200 {
				b.Errorf("%v %d", err, resp.StatusCode())
				return
			}
		}
	})
}

// BenchmarkRouterMatch: longest-prefix routing over 50 prefix routes, 50
// exact routes and 10 host-specific routes.
//
//	go test ./edge -run '^$' -bench RouterMatch -benchmem -cpu 1,2
func BenchmarkRouterMatch(b *testing.B) {
	r := benchRouter()
	host, path, method := []byte("api.example.com"), []byte("/svc/25/items/99"), []byte("GET")
	if rt, _ := r.match(host, path, method, nil); rt == nil || rt.name != "p25" {
		b.Fatalf("matched %v", rt)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			_, _ = r.match(host, path, method, nil)
		}
	})
}

func benchRouter() *router {
	var routes []*route
	for i := 0; i < 50; i++ {
		routes = append(routes,
			&route{name: fmt.Sprintf("p%d", i), prefix: fmt.Sprintf("/svc/%d/", i)},
			&route{name: fmt.Sprintf("e%d", i), exactPath: fmt.Sprintf("/exact/%d", i), methods: [][]byte{[]byte("GET")}})
	}
	for i := 0; i < 10; i++ {
		routes = append(routes, &route{name: fmt.Sprintf("h%d", i), prefix: "/", host: fmt.Sprintf("h%d.example.com", i)})
	}
	return newRouter(routes)
}
