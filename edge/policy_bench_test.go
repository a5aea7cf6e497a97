package edge

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
)

// upstreamAnswer stands in for the proxy step in the policy benchmarks: a
// fixed answer with the headers an upstream typically sends, so what is
// measured is the policy steps alone.
type upstreamAnswer struct{}

var benchBody = []byte(`{"ok":true}`)

func (upstreamAnswer) serve(x *exchange) {
	r := &x.ctx.Response
	r.SetStatusCode(fasthttp.StatusOK)
	r.Header.SetContentType("application/json")
	r.Header.Set("Server", "upstream/1.0")
	r.Header.Set("Vary", "Accept-Encoding")
	r.SetBodyRaw(benchBody)
}

// BenchmarkPolicySteps prices each edge policy on its own, then all of
// them, against "none": the top-level ip filter plus the route's steps,
// with the proxy step replaced by a fixed answer (no sockets).
//
//	go test ./edge -run '^$' -bench PolicySteps -benchmem -cpu 1,2
func BenchmarkPolicySteps(b *testing.B) {
	var deny strings.Builder
	for i := 0; i < 10000; i++ {
		fmt.Fprintf(&deny, "100.%d.%d.0/24, ", 64+i/256, i%256)
	}
	ipFilter := "ip_filter: { allow: [127.0.0.0/8, \"::1\"], deny: [" + deny.String() + "\"2001:db8::/32\"] }\n"
	const security = "security_headers: { preset: strict }\n"
	const cors = "cors: { allow_origins: [https://app.example, \"https://*.example.org\"], allow_methods: [GET, PUT], allow_headers: [Content-Type], expose_headers: [X-Request-Id], allow_credentials: true, max_age: 10m }\n"
	const origin = "Origin: https://a.example.org\r\n"
	const preflight = "Origin: https://app.example\r\nAccess-Control-Request-Method: PUT\r\nAccess-Control-Request-Headers: content-type\r\n"
	for _, c := range []struct {
		name, config, route, method, headers string
		status                               int
	}{
		{"none", "", "", "GET", origin, 200},
		{"ip_filter=10000", ipFilter, ", ip_filter: { allow: [127.0.0.1] }", "GET", origin, 200},
		{"security=strict", security, "", "GET", origin, 200},
		{"cors/request", cors, "", "GET", origin, 200},
		{"cors/preflight", cors, "", "OPTIONS", preflight, 204},
		{"all", ipFilter + security + cors, ", ip_filter: { allow: [127.0.0.1] }", "GET", origin, 200},
	} {
		b.Run(c.name, func(b *testing.B) {
			benchPolicy(b, c.config, c.route, c.method, c.headers, c.status)
		})
	}
}

func benchPolicy(b *testing.B, config, routeExtra, method, headers string, status int) {
	gw, err := New(mustParse(b, `
listen: 127.0.0.1:0
admin: { listen: "off" }
`+config+`
upstreams: { up: { targets: [ { url: "http://127.0.0.1:9" } ] } }
routes:
  - { name: api, match: { prefix: /api/ }, upstream: up `+routeExtra+` }
`), quietLogger(), "test")
	if err != nil {
		b.Fatal(err)
	}
	s := gw.Snapshot()
	rt := s.routes[0]
	rt.steps[len(rt.steps)-1] = upstreamAnswer{}
	raw := []byte(method + " /api/x HTTP/1.1\r\nHost: bench.local\r\n" + headers + "\r\n")
	var ctx fasthttp.RequestCtx
	conn := &addrConn{remote: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 50000}}
	var src bytes.Reader
	var br bufio.Reader
	once := func() {
		ctx.Init2(conn, nil, false)
		ctx.Request.Reset()
		ctx.Response.Reset()
		src.Reset(raw)
		br.Reset(&src)
		if err := ctx.Request.Read(&br); err != nil {
			b.Fatal(err)
		}
		x := acquireExchange(&ctx, s)
		if x.admitIP(s.ipFilter) {
			x.route = rt
			x.next()
		}
		if ctx.Response.StatusCode() != status {
			b.Fatalf("status %d, want %d", ctx.Response.StatusCode(), status)
		}
		releaseExchange(x)
	}
	once()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		once()
	}
}
