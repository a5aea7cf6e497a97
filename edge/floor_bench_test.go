package edge

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/sluicegw/sluice/bench/stub"
	"github.com/sluicegw/sluice/internal/testutil"
	"github.com/valyala/fasthttp"
)

// BenchmarkFloor compares sluice with what fasthttp alone costs, the way
// bench/floor does it under wrk: one client connection sending requests
// one after another over loopback TCP to a server that proxies them to
// the stub. Sequential on purpose: under callgrind (bench/README.md,
// "Round two") the instructions per request are then the same from run
// to run, so two builds can be compared on a machine busy with other work.
//
//   - floor: a fasthttp.Server handing each request to one
//     fasthttp.HostClient (bench/floor's code)
//   - floor+headers: the same, also setting the headers sluice (and the
//     harness's nginx) add: X-Forwarded-For/-Proto/-Host, X-Request-Id
//     and traceparent on the request, X-Request-Id on the answer, Via
//     both ways; the client and the stub then parse what they parse
//     behind sluice, so the difference to bare is sluice's own work
//   - bare: sluice, one route without policies
//   - full: sluice with a cached JWT, a local rate limit, metrics and an
//     access log sampling 1% (the harness's full route)
//
// allocs/op covers the client, the proxy and the stub: the stub's JSON
// answer allocates 5 per request (its strconv.AppendQuote), the same in
// every sub-benchmark; sluice's own part allocates nothing
// (TestProxyAllocatesNothing and its siblings hold it).
//
//	go test ./edge -run '^$' -bench Floor -benchmem -cpu 1
func BenchmarkFloor(b *testing.B) {
	up := testutil.StartUpstream(b, stub.Options{Name: "bench"})
	b.Run("floor", func(b *testing.B) {
		client := &fasthttp.HostClient{Addr: up.Addr, MaxConns: 1024}
		srv := &fasthttp.Server{NoDefaultServerHeader: true, Handler: func(ctx *fasthttp.RequestCtx) {
			if err := client.Do(&ctx.Request, &ctx.Response); err != nil {
				ctx.Error("bad gateway", fasthttp.StatusBadGateway)
			}
		}}
		ln := testutil.Listen(b)
		go func() { _ = srv.Serve(ln) }()
		b.Cleanup(func() { _ = srv.Shutdown() })
		sequentialClient(b, ln.Addr().String(), "")
	})
	b.Run("floor+headers", func(b *testing.B) {
		client := &fasthttp.HostClient{Addr: up.Addr, MaxConns: 1024}
		ip, proto, host := []byte("127.0.0.1"), []byte("http"), []byte("127.0.0.1")
		id, via := []byte("0123456789abcdef0123456789abcdef"), []byte("1.1 sluice")
		tp := []byte("00-0123456789abcdef0123456789abcdef-0123456789abcdef-00")
		srv := &fasthttp.Server{NoDefaultServerHeader: true, Handler: func(ctx *fasthttp.RequestCtx) {
			h := &ctx.Request.Header
			h.SetCanonical(headerXFF, ip)
			h.SetCanonical(headerXFP, proto)
			h.SetCanonical(headerXFH, host)
			h.SetCanonical(headerVia, via)
			h.SetCanonical(headerRequestID, id)
			h.SetCanonical(headerTraceparent, tp)
			if err := client.Do(&ctx.Request, &ctx.Response); err != nil {
				ctx.Error("bad gateway", fasthttp.StatusBadGateway)
			}
			ctx.Response.Header.SetCanonical(headerVia, via)
			ctx.Response.Header.SetCanonical(headerRequestID, id)
		}}
		ln := testutil.Listen(b)
		go func() { _ = srv.Serve(ln) }()
		b.Cleanup(func() { _ = srv.Shutdown() })
		sequentialClient(b, ln.Addr().String(), "")
	})
	b.Run("bare", func(b *testing.B) {
		g := startGateway(b, oneUpstream(up.URL, "  - { name: bench, match: { prefix: / }, upstream: up }\n"))
		sequentialClient(b, g.addr, "")
	})
	b.Run("full", func(b *testing.B) {
		g := startGateway(b, `
listen: 127.0.0.1:0
admin: { listen: "off" }
auth: { jwt: { keys: [ { id: k1, algorithm: HS256, secret: "`+testSecret+`" } ] } }
access_log: { enabled: true, output: "`+filepath.Join(b.TempDir(), "access.log")+`", sample: 0.01 }
upstreams:
  up: { targets: [ { url: "`+up.URL+`" } ] }
routes:
  - { name: bench, match: { prefix: / }, upstream: up, auth: jwt, rate_limit: { rate: 100000000, per: 1s, key: [ip] } }
`)
		sequentialClient(b, g.addr, "Bearer "+hsToken(b, "bench", nil, 24*time.Hour))
	})
}

// sequentialClient sends b.N GET requests over one keep-alive connection,
// each after the previous answer, after one warm-up.
func sequentialClient(b *testing.B, addr, authz string) {
	c := &fasthttp.HostClient{Addr: addr, MaxConns: 1, ReadTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second}
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	url := []byte("http://" + addr + "/users/42")
	if authz != "" {
		req.Header.Set("Authorization", authz) // kept: Do leaves req as it was
	}
	do := func() {
		req.SetRequestURIBytes(url)
		if err := c.Do(req, resp); err != nil || resp.StatusCode() != 200 {
			b.Fatalf("%v %d: %s", err, resp.StatusCode(), resp.Body())
		}
	}
	for range 10 {
		do()
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		do()
	}
}
