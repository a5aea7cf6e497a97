package edge

import (
	"bytes"
	"io"
	"net/http"
	"strconv"
	"testing"

	"github.com/sluicegw/sluice/bench/stub"
	"github.com/sluicegw/sluice/internal/testutil"
)

// routes[].max_body_bytes overrides server.max_body_bytes both ways: a
// route may take less (413, RFC 9110 15.5.14, the upstream never asked)
// or more than the server's limit, whether the body's length is declared
// or it comes chunked.
func TestRouteMaxBodyBytes(t *testing.T) {
	up := testutil.StartUpstream(t, stub.Options{Name: "up"})
	g := startGateway(t, oneUpstream(up.URL, `
  - { name: small, match: { prefix: /small/ }, upstream: up, rewrite: { replace_path: /__stub/echo }, max_body_bytes: 1KiB }
  - { name: big, match: { prefix: /big/ }, upstream: up, rewrite: { replace_path: /__stub/echo }, max_body_bytes: 8MiB }
  - { name: all, match: { prefix: / }, upstream: up, rewrite: { replace_path: /__stub/echo } }
`)+"server: { max_body_bytes: 1MiB, buffer_body_bytes: 64KiB }\n")
	cases := []struct {
		name, path string
		size       int
		chunked    bool
		status     int
	}{
		{"within the route's", "/small/x", 1024, false, 200},
		{"over the route's, declared", "/small/x", 2048, false, 413},
		{"over the route's, chunked", "/small/x", 2048, true, 413},
		{"over the route's, chunked, past the buffer", "/small/x", 200 << 10, true, 413},
		{"other route, server's limit", "/other", 2048, false, 200},
		{"over the server's, route allows it", "/big/x", 4 << 20, false, 200},
		{"over the server's, route allows it, chunked", "/big/x", 4 << 20, true, 200},
		{"over the server's", "/other", 4 << 20, false, 413},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := up.Requests()
			body := bytes.Repeat([]byte("x"), c.size)
			var r io.Reader = bytes.NewReader(body)
			if c.chunked {
				r = io.MultiReader(r) // unknown length: sent chunked
			}
			resp := g.do(t, request{method: "POST", path: c.path, body: r})
			if c.status != 200 {
				wantFault(t, resp, c.status, "request body too large")
				if c.size <= 64<<10 && up.Requests() != before {
					t.Error("the upstream was asked anyway")
				}
				return
			}
			if resp.status != 200 || !bytes.Contains([]byte(resp.body), []byte(`"body_bytes":`+itoa(c.size))) {
				t.Fatalf("%d %s", resp.status, resp.body)
			}
		})
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// routes[].max_response_bytes: an answer over it, buffered or declaring
// its length, becomes a 502 (and the next request on the same client
// connection is served normally); a chunked stream is cut at the limit and
// the client's connection closed, so the client sees a truncated body
// (RFC 9112 7.1: no last chunk), never a complete-looking one; answers
// within it pass untouched, and other routes are not limited.
func TestRouteMaxResponseBytes(t *testing.T) {
	up := testutil.StartUpstream(t, stub.Options{Name: "up"})
	g := startGateway(t, oneUpstream(up.URL, `
  - { name: capped, match: { prefix: /capped/ }, upstream: up, rewrite: { strip_prefix: /capped }, max_response_bytes: 100KiB }
  - { name: all, match: { prefix: / }, upstream: up }
`))
	for _, c := range []struct {
		path   string
		status int
		size   int
	}{
		{"/capped/__stub/bytes?n=1000", 200, 1000},
		{"/capped/__stub/bytes?n=102400", 200, 102400},
		{"/capped/__stub/bytes?n=50000", 200, 50000},
		{"/capped/__stub/bytes?n=60000", 200, 60000},
		{"/capped/__stub/bytes?n=102401", 502, 0}, // declared, streamed (over buffer_response_bytes)
		{"/__stub/bytes?n=1048576", 200, 1 << 20}, // other route
	} {
		r := g.get(t, c.path)
		if c.status == 502 {
			wantFault(t, r, 502, "upstream response too large")
			continue
		}
		if r.status != c.status || len(r.body) != c.size {
			t.Errorf("%s: %d, %d bytes", c.path, r.status, len(r.body))
		}
	}
	// Buffered (64 KiB default buffer_response_bytes): a 20 KiB answer over
	// a route's 10 KiB limit.
	g2 := startGateway(t, oneUpstream(up.URL, `
  - { name: capped, match: { prefix: / }, upstream: up, max_response_bytes: 10KiB }
`))
	wantFault(t, g2.get(t, "/__stub/bytes?n=20000"), 502, "upstream response too large")
	if r := g2.get(t, "/__stub/bytes?n=10240"); r.status != 200 || len(r.body) != 10240 {
		t.Errorf("at the limit: %d, %d bytes", r.status, len(r.body))
	}

	// Chunked, length unknown: cut at the limit.
	req, _ := http.NewRequest("GET", g.url+"/capped/__stub/stream?n=1048576", nil)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("stream: status %d", resp.StatusCode)
	}
	n, err := io.Copy(io.Discard, resp.Body)
	if err == nil || n > 100<<10 {
		t.Fatalf("stream: read %d bytes, err %v; want at most 102400 and an error (truncated)", n, err)
	}
}
