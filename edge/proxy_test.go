package edge

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluicegw/sluice/bench/stub"
	"github.com/sluicegw/sluice/internal/testutil"
	"github.com/valyala/fasthttp"
)

func TestRewrites(t *testing.T) {
	up := testutil.StartUpstream(t, stub.Options{Name: "a"})
	g := startGateway(t, oneUpstream(up.URL, `
  - name: strip
    match: { prefix: /api/ }
    upstream: up
    rewrite: { strip_prefix: /api }
  - name: strip-add
    match: { prefix: /v1/ }
    upstream: up
    rewrite: { strip_prefix: /v1, add_prefix: /internal/v1 }
  - name: replace
    match: { path: /old }
    upstream: up
    rewrite: { replace_path: /__stub/echo }
  - name: plain
    match: { prefix: /__stub/ }
    upstream: up
`))
	cases := []struct{ path, wantURI string }{
		{"/api/__stub/echo?a=1&b=%20x", "/__stub/echo?a=1&b=%20x"},
		{"/v1/users/7", "/internal/v1/users/7"},
		{"/old?keep=query", "/__stub/echo?keep=query"},
		{"/__stub/echo?q=%2F%3F&&x", "/__stub/echo?q=%2F%3F&&x"},
	}
	for _, c := range cases {
		resp := g.get(t, c.path)
		var got struct{ URI string }
		if resp.status != 200 || json.Unmarshal([]byte(resp.body), &got) != nil {
			t.Fatalf("%s: %d %s", c.path, resp.status, resp.body)
		}
		if got.URI != c.wantURI {
			t.Errorf("%s: upstream saw uri %q, want %q", c.path, got.URI, c.wantURI)
		}
	}
}

// Paths are normalised (RFC 3986 section 6) before routing, and the
// normalised path is what goes upstream: a gateway that routes on one form
// and forwards another lets a client reach a path the routes did not allow.
func TestPathNormalisedBeforeRoutingAndForwarded(t *testing.T) {
	up := testutil.StartUpstream(t, stub.Options{Name: "a"})
	g := startGateway(t, oneUpstream(up.URL, `
  - name: files
    match: { prefix: /files/ }
    upstream: up
`))
	cases := []struct {
		path    string
		status  int
		uri     string // what the upstream saw, for 200
		message string // the error, for 400
	}{
		{"/files/a%20b?x=%2F", 200, "/files/a%20b?x=%2F", ""},    // already normal; the query goes as sent
		{"/files/...", 200, "/files/...", ""},                    // RFC 3986 3.3: not a dot segment
		{"/files/.hidden", 200, "/files/.hidden", ""},            //
		{"/files//x", 200, "/files/x", ""},                       // slashes merged
		{"//files/a", 200, "/files/a", ""},                       // merged, then matched
		{"/files/./a", 200, "/files/a", ""},                      // RFC 3986 5.2.4
		{"/files/%2e%2ex.txt", 200, "/files/..x.txt", ""},        // RFC 3986 6.2.2.2: unreserved decoded
		{"/files/adm%69n", 200, "/files/admin", ""},              //
		{"/files/a%2Fb", 400, "", "encoded slash (%2F) in path"}, // escaped_slashes: reject
		{"/files%2Fa", 400, "", "encoded slash (%2F) in path"},   //
		{"/files/%2e%2e/admin", 400, "", "encoded dot segment (%2E) in path"},
		{"/files/.%2E/x", 400, "", "encoded dot segment (%2E) in path"},
		{"/..", 400, "", "path goes above the root (..)"},
		{"/files/../admin", 404, "", ""}, // resolved to /admin: no route
		{"/files/..", 404, "", ""},       // resolved to /
		{"/FILES/a", 404, "", ""},        // paths are case-sensitive
	}
	forwarded := 0
	for _, c := range cases {
		raw := testutil.RawExchange(t, g.addr, "GET "+c.path+" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
		if !strings.HasPrefix(raw, fmt.Sprintf("HTTP/1.1 %d", c.status)) {
			t.Errorf("%s: want %d, got:\n%s", c.path, c.status, raw)
			continue
		}
		switch {
		case c.status == 200:
			forwarded++
			if !strings.Contains(raw, `"uri":"`+c.uri+`"`) {
				t.Errorf("%s: want uri %s upstream, got:\n%s", c.path, c.uri, raw)
			}
		case c.message != "" && !strings.Contains(raw, `"error":"`+c.message+`"`):
			t.Errorf("%s: want error %q, got:\n%s", c.path, c.message, raw)
		}
	}
	if n := up.Requests(); n != int64(forwarded) {
		t.Errorf("upstream saw %d requests, want %d (refused ones must not reach it)", n, forwarded)
	}
}

func TestHopByHopHeadersStrippedBothWays(t *testing.T) {
	up := testutil.StartUpstream(t, stub.Options{Name: "a"})
	g := startGateway(t, oneUpstream(up.URL, `
  - name: all
    match: { prefix: / }
    upstream: up
`))
	e, _ := g.echo(t, request{path: "/__stub/echo", headers: map[string]string{
		"Connection":          "X-Secret, keep-alive, Host, X-Request-ID",
		"X-Secret":            "must not pass",
		"Keep-Alive":          "timeout=5",
		"Te":                  "trailers",
		"Upgrade":             "h2c",
		"Proxy-Authorization": "Basic Zm9vOmJhcg==",
		"Proxy-Connection":    "keep-alive",
		"X-Kept":              "yes",
		"X-Request-Id":        "client-id-1",
	}})
	for _, h := range []string{"X-Secret", "Keep-Alive", "Te", "Upgrade", "Proxy-Authorization", "Proxy-Connection", "Connection"} {
		if v, ok := e.Headers[h]; ok {
			t.Errorf("upstream got hop-by-hop %s: %v", h, v)
		}
	}
	if e.Headers["X-Kept"] == nil {
		t.Error("ordinary header X-Kept was dropped")
	}
	// Naming Host or X-Request-ID in Connection must not remove them.
	if e.Host == "" || e.Headers["X-Request-Id"] == nil || e.Headers["X-Request-Id"][0] != "client-id-1" {
		t.Errorf("protected headers were removed: host %q, id %v", e.Host, e.Headers["X-Request-Id"])
	}

	resp := g.get(t, "/__stub/respond?h=Connection:X-Internal&h=X-Internal:1&h=Keep-Alive:timeout%3D9&h=Upgrade:h2c&h=Proxy-Authenticate:Basic&h=X-Fine:1")
	for _, h := range []string{"X-Internal", "Keep-Alive", "Upgrade", "Proxy-Authenticate"} {
		if v := resp.header.Get(h); v != "" {
			t.Errorf("client got hop-by-hop %s: %q", h, v)
		}
	}
	if resp.header.Get("X-Fine") != "1" || resp.header.Get("Via") != "1.1 sluice" {
		t.Errorf("response headers: %v", resp.header)
	}
}

func TestForwardedHeadersAndRequestID(t *testing.T) {
	up := testutil.StartUpstream(t, stub.Options{Name: "a"})
	routes := `
  - name: all
    match: { prefix: / }
    upstream: up
`
	hexID := regexp.MustCompile(`^[0-9a-f]{32}$`)

	t.Run("untrusted client", func(t *testing.T) {
		g := startGateway(t, oneUpstream(up.URL, routes))
		e, resp := g.echo(t, request{path: "/__stub/echo", host: "shop.example.com", headers: map[string]string{
			"X-Forwarded-For":   "6.6.6.6",
			"X-Forwarded-Proto": "https",
			"X-Forwarded-Host":  "evil.example",
			"Via":               "1.0 corp-proxy",
		}})
		if got := e.Headers["X-Forwarded-For"]; len(got) != 1 || got[0] != "127.0.0.1" {
			t.Errorf("X-Forwarded-For = %v, want the peer only (spoofed value replaced)", got)
		}
		if got := e.Headers["X-Forwarded-Proto"]; got[0] != "http" {
			t.Errorf("X-Forwarded-Proto = %v", got)
		}
		if got := e.Headers["X-Forwarded-Host"]; got[0] != "shop.example.com" {
			t.Errorf("X-Forwarded-Host = %v", got)
		}
		if got := e.Headers["Via"]; got[0] != "1.0 corp-proxy, 1.1 sluice" {
			t.Errorf("Via = %v", got)
		}
		id := e.Headers["X-Request-Id"]
		if len(id) != 1 || !hexID.MatchString(id[0]) || resp.header.Get("X-Request-Id") != id[0] {
			t.Errorf("generated request id %v, echoed %q", id, resp.header.Get("X-Request-Id"))
		}
		if e.Proto != "HTTP/1.1" {
			t.Errorf("upstream protocol %q", e.Proto)
		}
	})

	t.Run("trusted proxy", func(t *testing.T) {
		cfg := strings.Replace(oneUpstream(up.URL, routes), "admin:", "server: { trusted_proxies: [127.0.0.0/8] }\nadmin:", 1)
		g := startGateway(t, cfg)
		e, _ := g.echo(t, request{path: "/__stub/echo", headers: map[string]string{
			"X-Forwarded-For":   "203.0.113.9",
			"X-Forwarded-Proto": "https",
			"X-Forwarded-Host":  "api.example.com",
		}})
		if got := e.Headers["X-Forwarded-For"][0]; got != "203.0.113.9, 127.0.0.1" {
			t.Errorf("X-Forwarded-For = %q, want the chain extended", got)
		}
		if e.Headers["X-Forwarded-Proto"][0] != "https" || e.Headers["X-Forwarded-Host"][0] != "api.example.com" {
			t.Errorf("trusted X-Forwarded-Proto/Host replaced: %v", e.Headers)
		}
	})

	// RFC 9110 5.3: a proxy that adds its own X-Forwarded-For line instead
	// of extending the client's (HAProxy's option forwardfor) leaves the
	// client's forged line first. The lines are one list: the client is
	// the rightmost untrusted entry of the last line, not of the first
	// (which let a client behind such a proxy pick its own address for ip
	// filters and rate-limit keys).
	t.Run("trusted proxy adding a line of its own", func(t *testing.T) {
		cfg := strings.Replace(oneUpstream(up.URL, routes), "admin:", "server: { trusted_proxies: [127.0.0.0/8] }\nip_filter: { allow: [10.0.0.0/8] }\nadmin:", 1)
		g := startGateway(t, cfg)
		raw := testutil.RawExchange(t, g.addr, "GET /__stub/echo HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 10.1.2.3\r\nX-Forwarded-For: 203.0.113.9\r\nConnection: close\r\n\r\n")
		if !strings.HasPrefix(raw, "HTTP/1.1 403") {
			t.Errorf("the client's forged first line was believed:\n%s", raw)
		}
		raw = testutil.RawExchange(t, g.addr, "GET /__stub/echo HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 203.0.113.9\r\nX-Forwarded-For: 10.1.2.3\r\nConnection: close\r\n\r\n")
		if !strings.HasPrefix(raw, "HTTP/1.1 200") || !strings.Contains(raw, `"X-Forwarded-For":["203.0.113.9, 10.1.2.3, 127.0.0.1"]`) {
			t.Errorf("want 200 and one joined X-Forwarded-For upstream, got:\n%s", raw)
		}
	})

	t.Run("client request ids", func(t *testing.T) {
		g := startGateway(t, oneUpstream(up.URL, routes))
		e, resp := g.echo(t, request{path: "/__stub/echo", headers: map[string]string{"X-Request-ID": "abc-123.x:y_z"}})
		if e.Headers["X-Request-Id"][0] != "abc-123.x:y_z" || resp.header.Get("X-Request-Id") != "abc-123.x:y_z" {
			t.Errorf("valid client id not kept: %v / %q", e.Headers["X-Request-Id"], resp.header.Get("X-Request-Id"))
		}
		for _, bad := range []string{"has space", strings.Repeat("a", 129), `q"uote`} {
			e, _ := g.echo(t, request{path: "/__stub/echo", headers: map[string]string{"X-Request-ID": bad}})
			if got := e.Headers["X-Request-Id"]; len(got) != 1 || !hexID.MatchString(got[0]) {
				t.Errorf("bad client id %q: upstream got %v, want a fresh id", bad, got)
			}
		}
	})
}

func TestHostHeaderModes(t *testing.T) {
	up := testutil.StartUpstream(t, stub.Options{Name: "a"})
	g := startGateway(t, oneUpstream(up.URL, `
  - name: preserve
    match: { prefix: /p/ }
    upstream: up
    rewrite: { replace_path: /__stub/echo }
  - name: target
    match: { prefix: /t/ }
    upstream: up
    rewrite: { replace_path: /__stub/echo }
    host_header: target
  - name: literal
    match: { prefix: /l/ }
    upstream: up
    rewrite: { replace_path: /__stub/echo }
    host_header: internal.svc
`))
	for path, want := range map[string]string{"/p/": "client.example", "/t/": up.Addr, "/l/": "internal.svc"} {
		e, _ := g.echo(t, request{path: path, host: "client.example"})
		if e.Host != want {
			t.Errorf("%s: upstream Host %q, want %q", path, e.Host, want)
		}
	}
}

func TestHeaderOps(t *testing.T) {
	up := testutil.StartUpstream(t, stub.Options{Name: "a"})
	g := startGateway(t, oneUpstream(up.URL, `
  - name: ops
    match: { prefix: / }
    upstream: up
    request_headers: { set: { X-Env: prod, X-Override: gateway }, remove: [Cookie] }
    response_headers: { set: { X-Frame-Options: DENY }, remove: [Server] }
`))
	e, resp := g.echo(t, request{path: "/__stub/echo", headers: map[string]string{"Cookie": "s=1", "X-Override": "client"}})
	if e.Headers["Cookie"] != nil || e.Headers["X-Env"][0] != "prod" || e.Headers["X-Override"][0] != "gateway" {
		t.Errorf("request header ops not applied: %v", e.Headers)
	}
	if resp.header.Get("X-Frame-Options") != "DENY" || resp.header.Get("Server") != "" {
		t.Errorf("response header ops not applied: %v", resp.header)
	}
}

func TestRoutingByHostPathAndMethod(t *testing.T) {
	a := testutil.StartUpstream(t, stub.Options{Name: "a"})
	b := testutil.StartUpstream(t, stub.Options{Name: "b"})
	c := testutil.StartUpstream(t, stub.Options{Name: "c"})
	g := startGateway(t, fmt.Sprintf(`
listen: 127.0.0.1:0
admin: { listen: "off" }
upstreams:
  a: { targets: [ { url: "%s" } ] }
  b: { targets: [ { url: "%s" } ] }
  c: { targets: [ { url: "%s" } ] }
routes:
  - { name: any-host, match: { prefix: /x/ }, upstream: a }
  - { name: longer, match: { prefix: /x/deeper/ }, upstream: b }
  - { name: exact, match: { path: /x/exact }, upstream: c }
  - { name: exact-host, match: { prefix: /x/, host: api.example.com }, upstream: b }
  - { name: wildcard, match: { prefix: /x/, host: "*.example.com" }, upstream: c }
  - { name: get-only, match: { prefix: /ro/, methods: [GET] }, upstream: a }
  - { name: post-only, match: { prefix: /ro/, methods: [POST] }, upstream: b }
  - { name: write, match: { path: /w, methods: [PUT, DELETE] }, upstream: a }
`, a.URL, b.URL, c.URL))
	cases := []struct {
		method, path, host, want string
	}{
		{"GET", "/x/1", "other.org", "a"},
		{"GET", "/x/deeper/1", "other.org", "b"},
		{"GET", "/x/exact", "other.org", "c"},
		{"GET", "/x/exact?q", "other.org", "c"},
		{"GET", "/x/1", "API.example.com:8080", "b"},
		{"GET", "/x/1", "v2.eu.example.com", "c"},
		{"GET", "/x/1", "example.com", "a"},
		{"GET", "/ro/1", "", "a"},
		{"POST", "/ro/1", "", "b"},
		{"HEAD", "/ro/1", "", "a"},
	}
	for _, tc := range cases {
		resp := g.do(t, request{method: tc.method, path: tc.path, host: tc.host})
		if resp.status != 200 {
			t.Errorf("%s %s host %s: %d %s", tc.method, tc.path, tc.host, resp.status, resp.body)
			continue
		}
		if tc.method != "HEAD" && !strings.Contains(resp.body, `"upstream":"`+tc.want+`"`) {
			t.Errorf("%s %s host %s: reached %s, want %s", tc.method, tc.path, tc.host, resp.body, tc.want)
		}
	}
	resp := g.do(t, request{method: "PATCH", path: "/w"})
	wantFault(t, resp, 405, "method not allowed")
	if resp.header.Get("Allow") != "PUT, DELETE" {
		t.Errorf("Allow = %q", resp.header.Get("Allow"))
	}
	resp = g.do(t, request{method: "DELETE", path: "/ro/1"})
	wantFault(t, resp, 405, "method not allowed")
	if resp.header.Get("Allow") != "GET, HEAD, POST" {
		t.Errorf("Allow = %q", resp.header.Get("Allow"))
	}
	wantFault(t, g.get(t, "/nothing"), 404, "no route")
}

func TestBodilessResponses(t *testing.T) {
	up := testutil.StartUpstream(t, stub.Options{Name: "a", BodySize: 1234})
	g := startGateway(t, oneUpstream(up.URL, catchAll))
	// HEAD: headers (with the length a GET would have) and no body. A raw
	// exchange shows any stray body bytes.
	raw := testutil.RawExchange(t, g.addr, "HEAD /x HTTP/1.1\r\nHost: x\r\n\r\nGET /__stub/status?code=204 HTTP/1.1\r\nHost: x\r\n\r\nGET /__stub/status?code=304 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	parts := strings.SplitAfter(raw, "\r\n\r\n")
	if len(parts) != 4 || parts[3] != "" {
		t.Fatalf("want three bodiless responses on one connection, got:\n%s", raw)
	}
	if !strings.HasPrefix(parts[0], "HTTP/1.1 200") || !strings.Contains(parts[0], "Content-Length: 1234") {
		t.Errorf("HEAD answer:\n%s", parts[0])
	}
	if !strings.HasPrefix(parts[1], "HTTP/1.1 204") || !strings.HasPrefix(parts[2], "HTTP/1.1 304") {
		t.Errorf("204/304 answers:\n%s", raw)
	}
}

func TestStreamingAndChunkedBodies(t *testing.T) {
	up := testutil.StartUpstream(t, stub.Options{Name: "a"})
	g := startGateway(t, oneUpstream(up.URL, catchAll)+"server: { buffer_body_bytes: 64KiB, max_body_bytes: 8MiB }\n")
	want := func(n int) string {
		b, _ := io.ReadAll(io.LimitReader(&stub.Pattern{}, int64(n)))
		return string(b)
	}
	// Chunked from upstream, small and large; fixed-length large (streamed).
	for _, path := range []string{"/__stub/stream?n=1000", "/__stub/stream?n=3000000", "/__stub/bytes?n=3000000", "/__stub/bytes?n=100"} {
		resp := g.get(t, path)
		var n int
		fmt.Sscanf(path[strings.Index(path, "n=")+2:], "%d", &n)
		if resp.status != 200 || resp.body != want(n) {
			t.Errorf("%s: status %d, %d bytes (want %d, content equal %v)", path, resp.status, len(resp.body), n, resp.body == want(n))
		}
	}
	// Uploads: buffered, streamed with a length, streamed chunked. The
	// upstream hashes what it got.
	for _, size := range []int{10, 200 << 10, 5 << 20} {
		body := want(size)
		sum := sha256.Sum256([]byte(body))
		for _, chunked := range []bool{false, true} {
			var r io.Reader = strings.NewReader(body)
			if chunked {
				r = io.MultiReader(r) // hides the length: net/http sends it chunked
			}
			e, _ := g.echo(t, request{method: "POST", path: "/__stub/echo", body: r})
			if e.BodyBytes != int64(size) || e.BodySHA256 != hex.EncodeToString(sum[:]) {
				t.Errorf("upload %d bytes (chunked %v): upstream got %d bytes, hash match %v", size, chunked, e.BodyBytes, e.BodySHA256 == hex.EncodeToString(sum[:]))
			}
		}
	}
}

func TestRequestFramingAndLimits(t *testing.T) {
	up := testutil.StartUpstream(t, stub.Options{Name: "a"})
	g := startGateway(t, oneUpstream(up.URL, catchAll)+"server: { max_body_bytes: 100KiB, buffer_body_bytes: 16KiB, max_header_bytes: 4KiB }\n")

	t.Run("content-length and transfer-encoding together", func(t *testing.T) {
		raw := testutil.RawExchange(t, g.addr, "POST /__stub/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
		if !strings.HasPrefix(raw, "HTTP/1.1 400") || !strings.Contains(raw, "both content-length and transfer-encoding") {
			t.Errorf("got:\n%s", raw)
		}
	})
	t.Run("declared body too large", func(t *testing.T) {
		raw := testutil.RawExchange(t, g.addr, "POST /__stub/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 200000\r\n\r\n"+strings.Repeat("a", 9000))
		if !strings.HasPrefix(raw, "HTTP/1.1 413") || !strings.Contains(raw, `"error":"request body too large"`) {
			t.Errorf("got:\n%s", raw)
		}
	})
	t.Run("chunked body too large", func(t *testing.T) {
		resp := g.do(t, request{method: "POST", path: "/__stub/echo", body: io.MultiReader(strings.NewReader(strings.Repeat("x", 300<<10)))})
		wantFault(t, resp, 413, "request body too large")
		// Part of that body went upstream before the limit tripped. Had its
		// connection gone back to the pool, the next requests on it would
		// be read as the rest of that body.
		for i := 0; i < 5; i++ {
			e, _ := g.echo(t, request{method: "POST", path: "/__stub/echo", body: strings.NewReader("small")})
			if e.BodyBytes != 5 || e.Method != "POST" {
				t.Fatalf("request after a 413 mid-stream: %+v", e)
			}
		}
	})
	t.Run("headers too large", func(t *testing.T) {
		raw := testutil.RawExchange(t, g.addr, "GET / HTTP/1.1\r\nHost: x\r\nX-Big: "+strings.Repeat("b", 8<<10)+"\r\n\r\n")
		if !strings.HasPrefix(raw, "HTTP/1.1 431") || !strings.Contains(raw, `"error":"request headers too large"`) {
			t.Errorf("got:\n%s", raw)
		}
	})
	// RFC 9112 9.6: a server closing a connection should first close its
	// sending side and keep reading for a while; closing with the client's
	// bytes unread sends a TCP reset: the client's writes fail and its read
	// ends in ECONNRESET (before, the 431 was followed by a reset; with
	// some stacks the reset also discards the answer not yet read).
	t.Run("headers too large while the client keeps sending", func(t *testing.T) {
		c, err := net.Dial("tcp", g.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		// All of it is sent before the answer is read: by then sluice has
		// answered and closed, and a reset would have thrown the answer away.
		_, _ = io.WriteString(c, "POST / HTTP/1.1\r\nHost: x\r\nX-Big: "+strings.Repeat("b", 8<<10)+"\r\n")
		junk := []byte(strings.Repeat("j", 64<<10))
		var writeErr error
		for i := 0; i < 32 && writeErr == nil; i++ {
			_, writeErr = c.Write(junk)
		}
		_ = c.(*net.TCPConn).CloseWrite()
		b, err := io.ReadAll(c)
		if writeErr != nil {
			t.Errorf("the client could not finish sending: %v", writeErr)
		}
		if !strings.HasPrefix(string(b), "HTTP/1.1 431") || err != nil {
			t.Errorf("want the 431 answer and a clean close, got %q and read error %v", b, err)
		}
	})
	t.Run("malformed request line", func(t *testing.T) {
		raw := testutil.RawExchange(t, g.addr, "GARBAGE\r\n\r\n")
		if !strings.HasPrefix(raw, "HTTP/1.1 400") || !strings.Contains(raw, `"error":"bad request"`) {
			t.Errorf("got:\n%s", raw)
		}
	})
	t.Run("asterisk form", func(t *testing.T) {
		raw := testutil.RawExchange(t, g.addr, "OPTIONS * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
		if !strings.HasPrefix(raw, "HTTP/1.1 400") {
			t.Errorf("got:\n%s", raw)
		}
	})
	// The gateway is still fine after all that.
	if r := g.get(t, "/ok"); r.status != 200 {
		t.Errorf("after bad requests: %d", r.status)
	}
}

func TestUpstreamFaults(t *testing.T) {
	up := testutil.StartUpstream(t, stub.Options{Name: "a"})
	dead := testutil.DeadAddr(t)
	g := startGateway(t, fmt.Sprintf(`
listen: 127.0.0.1:0
admin: { listen: "off" }
upstreams:
  up: { targets: [ { url: "%s" } ] }
  dead: { targets: [ { url: "http://%s" } ] }
  narrow: { targets: [ { url: "%s" } ], max_connections: 1, max_conn_wait: 50ms }
routes:
  - { name: ok, match: { prefix: / }, upstream: up, timeout: 300ms }
  - { name: dead, match: { prefix: /dead/ }, upstream: dead }
  - { name: narrow, match: { prefix: /narrow/ }, upstream: narrow, rewrite: { strip_prefix: /narrow } }
`, up.URL, dead, up.URL))

	wantFault(t, g.get(t, "/dead/x"), 502, "upstream connection failed")
	wantFault(t, g.get(t, "/__stub/sleep?d=3s"), 504, "upstream timed out")
	wantFault(t, g.get(t, "/__stub/hangup"), 502, "upstream connection failed")
	wantFault(t, g.get(t, "/__stub/garbage"), 502, "bad response from upstream")

	// One connection, busy with a slow request: the next waits 50ms, then 503.
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		g.get(t, "/narrow/__stub/sleep?d=500ms")
	}()
	time.Sleep(100 * time.Millisecond)
	wantFault(t, g.get(t, "/narrow/x"), 503, "upstream connection limit reached")
	wg.Wait()

	// Faults on one upstream leave the others serving.
	if r := g.get(t, "/fine"); r.status != 200 {
		t.Errorf("healthy route after faults: %d %s", r.status, r.body)
	}
}

// An upstream's "Connection: close" ends the upstream connection, not the
// client's: the client keeps its keep-alive connection.
func TestUpstreamConnectionCloseKeepsClientConnection(t *testing.T) {
	up := testutil.StartUpstream(t, stub.Options{Name: "a"})
	g := startGateway(t, oneUpstream(up.URL, catchAll))
	c, err := net.Dial("tcp", g.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	for i := 0; i < 3; i++ {
		if _, err := io.WriteString(c, "GET /__stub/close HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		var resp fasthttp.Response
		if err := resp.Read(br); err != nil {
			t.Fatalf("response %d: %v", i, err)
		}
		if resp.StatusCode() != 200 || resp.ConnectionClose() {
			t.Fatalf("response %d: status %d, connection close %v", i, resp.StatusCode(), resp.ConnectionClose())
		}
	}
	if up.Conns() < 3 {
		t.Errorf("upstream accepted %d connections; each close should force a new one", up.Conns())
	}
}

// A client's "Connection: close" is honoured towards the client, and not
// forwarded: the upstream connection stays pooled.
func TestClientConnectionClose(t *testing.T) {
	up := testutil.StartUpstream(t, stub.Options{Name: "a"})
	g := startGateway(t, oneUpstream(up.URL, catchAll))
	for i := 0; i < 5; i++ {
		raw := testutil.RawExchange(t, g.addr, "GET /x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
		if !strings.HasPrefix(raw, "HTTP/1.1 200") || !strings.Contains(raw, "Connection: close") {
			t.Fatalf("got:\n%s", raw)
		}
	}
	if up.Conns() != 1 {
		t.Errorf("upstream accepted %d connections for 5 requests; want 1 reused", up.Conns())
	}
}

func TestHTTP10Client(t *testing.T) {
	up := testutil.StartUpstream(t, stub.Options{Name: "a"})
	g := startGateway(t, oneUpstream(up.URL, catchAll))
	raw := testutil.RawExchange(t, g.addr, "GET /__stub/echo HTTP/1.0\r\nHost: x\r\n\r\n")
	if !strings.HasPrefix(raw, "HTTP/1.1 200") || !strings.Contains(raw, `"proto":"HTTP/1.1"`) {
		t.Errorf("got:\n%s", raw)
	}
}

func TestClientDisconnectMidUploadDoesNotBreakGateway(t *testing.T) {
	up := testutil.StartUpstream(t, stub.Options{Name: "a"})
	g := startGateway(t, oneUpstream(up.URL, catchAll)+"server: { buffer_body_bytes: 1KiB }\n")
	c, err := net.Dial("tcp", g.addr)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.WriteString(c, "POST /__stub/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n"+strings.Repeat("x", 5000))
	time.Sleep(100 * time.Millisecond)
	_ = c.Close()
	time.Sleep(100 * time.Millisecond)
	if r := g.get(t, "/__stub/echo"); r.status != http.StatusOK {
		t.Errorf("after a client hung up mid-upload: %d %s", r.status, r.body)
	}
}

// The upstream read timeout counts from the end of sending: a slow
// streamed upload that takes longer than read_timeout still gets its
// answer (the route's own timeout, which defaults to read_timeout, is
// raised so that it doesn't cut the upload first).
func TestSlowUploadLongerThanReadTimeout(t *testing.T) {
	for _, c := range []struct{ name, upstreamTimeouts, routeTimeout string }{
		{"upstream read timeout", "read_timeout: 300ms, write_timeout: 300ms,", "5s"},
		// The route timeout bounds the upstream's part of the exchange: an
		// upload slower than it is the client's pace, and must not become
		// a 504 for a request the upstream answers (nor a failure counted
		// against the target).
		{"route timeout", "", "300ms"},
	} {
		t.Run(c.name, func(t *testing.T) { slowUpload(t, c.upstreamTimeouts, c.routeTimeout) })
	}
}

func slowUpload(t *testing.T, upstreamTimeouts, routeTimeout string) {
	up := testutil.StartUpstream(t, stub.Options{Name: "a"})
	g := startGateway(t, upstreamsConfig(`
  up: { `+upstreamTimeouts+` targets: [ { url: "`+up.URL+`" } ] }
`, "  - { name: all, match: { prefix: / }, upstream: up, timeout: "+routeTimeout+", rewrite: { replace_path: /__stub/echo } }\n"))
	pr, pw := io.Pipe()
	go func() {
		for i := 0; i < 8; i++ { // 8 x 100 ms: well past the 300 ms read timeout
			time.Sleep(100 * time.Millisecond)
			if _, err := pw.Write(bytes.Repeat([]byte("x"), 1024)); err != nil {
				return
			}
		}
		pw.Close()
	}()
	e, _ := g.echo(t, request{method: http.MethodPost, path: "/upload", body: pr})
	if e.BodyBytes != 8*1024 {
		t.Errorf("upstream got %d bytes, want %d", e.BodyBytes, 8*1024)
	}
}

// A route's own escaped_slashes: keep forwards %2F still encoded, decode
// turns it into "/", and routes that don't say refuse it (server.path's
// default, reject).
func TestEscapedSlashesPerRoute(t *testing.T) {
	up := testutil.StartUpstream(t, stub.Options{Name: "a"})
	g := startGateway(t, oneUpstream(up.URL, `
  - { name: ids, match: { prefix: /ids/ }, upstream: up, path: { escaped_slashes: keep } }
  - { name: dec, match: { prefix: /dec/ }, upstream: up, path: { escaped_slashes: decode } }
  - { name: other, match: { prefix: /other/ }, upstream: up }
  - { name: rest, match: { prefix: / }, upstream: up, path: { escaped_slashes: keep } }
`))
	cases := []struct{ path, want string }{
		{"/ids/a%2fb", `"uri":"/ids/a%2Fb"`},                      // kept, hex upper-cased (RFC 3986 6.2.2.1)
		{"/dec/a%2Fb%5Cc", `"uri":"/dec/a/b/c"`},                  // both decoded to "/"
		{"/other/a%2Fb", `"error":"encoded slash (%2F) in path"`}, // a route without its own setting rejects
		{"/x/a%2Fb", `"uri":"/x/a%2Fb"`},                          // the keep catch-all: decoded, still itself
		{"/ids/..%2Fx", `"error":"dot segment next to an encoded slash in path"`},
		{"/dec/x%2F..%2F..%2Fids", `"error":"dot segment next to an encoded slash in path"`},
		// Kept encoded, but once an upstream decodes it, it is inside
		// another route's prefix (review: "/admin%2Fsecret" through a keep
		// catch-all reached a protected "/admin/").
		{"/ids%2Fa", `"error":"encoded slash (%2F) in path"`},
	}
	for _, c := range cases {
		raw := testutil.RawExchange(t, g.addr, "GET "+c.path+" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
		if !strings.Contains(raw, c.want) {
			t.Errorf("%s: want %s, got:\n%s", c.path, c.want, raw)
		}
	}
}

// server.read_timeout and write_timeout bound each read and write of a
// streamed body, not the whole transfer: fasthttp sets the client
// connection's deadlines once per request, so a download or upload that
// kept moving was cut off when they passed (review: a 1.5 s stream broke
// at 500 ms, the upload with 400 and nothing upstream).
func TestLongStreamsNotCutByServerTimeouts(t *testing.T) {
	const chunks, size = 10, 1024
	pace := 150 * time.Millisecond // 10 x 150 ms: three times the 500 ms timeouts
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			n, _ := io.Copy(io.Discard, r.Body)
			fmt.Fprintf(w, "%d", n)
			return
		}
		for i := 0; i < chunks; i++ {
			_, _ = w.Write(bytes.Repeat([]byte("d"), size))
			w.(http.Flusher).Flush()
			time.Sleep(pace) // a slow producer, the thing under test
		}
	}))
	t.Cleanup(up.Close)
	g := startGateway(t, oneUpstream(up.URL, catchAll)+"server: { read_timeout: 500ms, write_timeout: 500ms }\n")

	resp, err := client.Get(g.url + "/down")
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil || n != chunks*size {
		t.Errorf("download: read %d of %d bytes, error %v", n, chunks*size, err)
	}

	pr, pw := io.Pipe()
	go func() {
		for i := 0; i < chunks; i++ {
			time.Sleep(pace) // a slow client
			if _, err := pw.Write(bytes.Repeat([]byte("u"), size)); err != nil {
				return
			}
		}
		pw.Close()
	}()
	r := g.do(t, request{method: http.MethodPost, path: "/up", body: pr})
	if r.status != 200 || r.body != strconv.Itoa(chunks*size) {
		t.Errorf("upload: %d %q, want 200 and %d bytes upstream", r.status, r.body, chunks*size)
	}
}
