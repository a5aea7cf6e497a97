package edge

import (
	"bufio"
	"bytes"
	stdgzip "compress/gzip"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
	brrr "github.com/molecule-man/go-brrr"
	"github.com/sluicegw/sluice/internal/testutil"
)

// compressibleText is n bytes of text that compresses well but not
// trivially (numbered lines).
func compressibleText(n int) []byte {
	var b bytes.Buffer
	for i := 0; b.Len() < n; i++ {
		fmt.Fprintf(&b, "line %d of the answer: the quick brown fox jumps over the lazy dog\n", i)
	}
	return b.Bytes()[:n]
}

// decode undoes a content coding with an independent decoder: the
// standard library's gzip, klauspost's zstd, go-brrr's brotli reader.
func decode(t *testing.T, coding string, body []byte) []byte {
	t.Helper()
	var r io.Reader
	switch coding {
	case "":
		return body
	case "gzip":
		zr, err := stdgzip.NewReader(bytes.NewReader(body))
		if err != nil {
			t.Fatalf("gzip: %v", err)
		}
		r = zr
	case "zstd":
		zr, err := zstd.NewReader(bytes.NewReader(body))
		if err != nil {
			t.Fatalf("zstd: %v", err)
		}
		defer zr.Close()
		r = zr
	case "br":
		r = brrr.NewReader(bytes.NewReader(body))
	default:
		t.Fatalf("unexpected Content-Encoding %q", coding)
	}
	out, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("decoding %s: %v", coding, err)
	}
	return out
}

// compressUpstream answers what the compression tests need; release
// lets /events send its second event.
// A net/http server: it streams (chunked) when the handler flushes.
func compressUpstream(t *testing.T, release chan struct{}) string {
	ln := testutil.Listen(t)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.URL.Query().Get("n"))
		h := w.Header()
		switch r.URL.Path {
		case "/text":
			h.Set("Content-Type", "text/html; charset=utf-8")
			h.Set("ETag", `"v1"`)
			h.Set("Accept-Ranges", "bytes")
			if r.URL.Query().Has("cl") {
				// Declared, so a HEAD's answer says it too (without it
				// net/http sends a large body chunked, and a HEAD no length).
				h.Set("Content-Length", strconv.Itoa(n))
			}
			_, _ = w.Write(compressibleText(n))
		case "/json-nt":
			h.Set("Content-Type", "application/json")
			h.Set("Cache-Control", "no-transform")
			_, _ = w.Write(compressibleText(n))
		case "/png":
			h.Set("Content-Type", "image/png")
			_, _ = w.Write(compressibleText(n))
		case "/pre":
			var b bytes.Buffer
			zw := stdgzip.NewWriter(&b)
			_, _ = zw.Write(compressibleText(n))
			_ = zw.Close()
			h.Set("Content-Type", "text/plain")
			h.Set("Content-Encoding", "gzip")
			_, _ = w.Write(b.Bytes())
		case "/stream":
			h.Set("Content-Type", "application/json")
			text := compressibleText(n)
			for len(text) > 0 {
				k := min(len(text), 32<<10)
				_, _ = w.Write(text[:k])
				w.(http.Flusher).Flush()
				text = text[k:]
			}
		case "/events":
			h.Set("Content-Type", "text/event-stream")
			_, _ = io.WriteString(w, "data: one\n\n")
			w.(http.Flusher).Flush()
			<-release
			_, _ = io.WriteString(w, "data: two\n\n")
		}
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return "http://" + ln.Addr().String()
}

const compressionRoutes = `
compression: { min_size: 1KiB }
routes:
  - { name: plain, match: { prefix: /off/ }, upstream: up, rewrite: { strip_prefix: /off }, compression: { enabled: false } }
  - { name: gz, match: { prefix: /gz/ }, upstream: up, rewrite: { strip_prefix: /gz }, compression: { algorithms: [gzip] } }
  - { name: all, match: { prefix: / }, upstream: up }
`

func compressionGateway(t *testing.T, release chan struct{}) *testGateway {
	up := compressUpstream(t, release)
	return startGateway(t, `
listen: 127.0.0.1:0
admin: { listen: "off" }
upstreams:
  up: { targets: [ { url: "`+up+`" } ] }
`+compressionRoutes)
}

// Accept-Encoding negotiation (RFC 9110 12.5.3): the highest q-value wins,
// sluice's order (zstd, br, gzip) breaks ties, q=0 excludes, "*" covers
// the codings not named, and without the header nothing is compressed.
// Each answer is decoded by an independent decoder and compared.
func TestCompressionNegotiation(t *testing.T) {
	g := compressionGateway(t, nil)
	want := compressibleText(20000)
	cases := []struct{ accept, coding string }{
		{"", ""},
		{"gzip", "gzip"},
		{"br", "br"},
		{"zstd", "zstd"},
		{"gzip, deflate, br, zstd", "zstd"},
		{"gzip;q=1.0, br;q=0.5, zstd;q=0.2", "gzip"},
		{"GZIP;Q=0.8, Br;q=0.9", "br"},
		{"x-gzip", "gzip"},
		{"*", "zstd"},
		{"zstd;q=0, *;q=0.5", "br"},
		{"identity", ""},
		{"deflate", ""},
		{"gzip;q=0, br;q=0, zstd;q=0", ""},
		{"gzip;q=2", ""}, // not a qvalue: the member is ignored
		{"gzip;q=0.001", "gzip"},
	}
	for _, c := range cases {
		t.Run(c.accept, func(t *testing.T) {
			h := map[string]string{}
			if c.accept != "" {
				h["Accept-Encoding"] = c.accept
			}
			r := g.do(t, request{path: "/text?n=20000", headers: h})
			if r.status != 200 {
				t.Fatalf("status %d", r.status)
			}
			if got := r.header.Get("Content-Encoding"); got != c.coding {
				t.Fatalf("Content-Encoding %q, want %q", got, c.coding)
			}
			if !bytes.Equal(decode(t, c.coding, []byte(r.body)), want) {
				t.Fatal("decoded body differs from the upstream's")
			}
			// Every answer of a compressible type varies on Accept-Encoding
			// (RFC 9110 12.5.5), compressed or not, so caches keep both.
			if v := r.header.Get("Vary"); !strings.Contains(v, "Accept-Encoding") {
				t.Errorf("Vary %q lacks Accept-Encoding", v)
			}
			etag, ranges := r.header.Get("ETag"), r.header.Get("Accept-Ranges")
			if c.coding != "" {
				// RFC 9110 8.8.1: a strong validator promises identical bytes;
				// the encoded answer is not the one the upstream tagged.
				if etag != `W/"v1"` || ranges != "" {
					t.Errorf("ETag %q Accept-Ranges %q, want W/\"v1\" and none", etag, ranges)
				}
				if len(r.body) >= len(want)/3 {
					t.Errorf("%s body %d bytes from %d: barely compressed", c.coding, len(r.body), len(want))
				}
			} else if etag != `"v1"` || ranges != "bytes" {
				t.Errorf("identity: ETag %q Accept-Ranges %q changed", etag, ranges)
			}
		})
	}
}

// What is never compressed: a body below min_size (unless the client
// refuses identity), a type not listed, an answer the upstream encoded
// already (never twice), Cache-Control: no-transform (RFC 9111 5.2.2.6),
// and a route with compression off.
func TestCompressionSkips(t *testing.T) {
	g := compressionGateway(t, nil)
	ae := map[string]string{"Accept-Encoding": "gzip, br, zstd"}
	cases := []struct {
		name, method, path string
		headers            map[string]string
		coding             string
		vary               bool
	}{
		{"below min_size", "GET", "/text?n=1000", ae, "", true},
		{"below min_size, identity refused", "GET", "/text?n=1000", map[string]string{"Accept-Encoding": "br, identity;q=0"}, "br", true},
		{"below min_size, * refused", "GET", "/text?n=100", map[string]string{"Accept-Encoding": "gzip, *;q=0"}, "gzip", true},
		{"type not listed", "GET", "/png?n=20000", ae, "", false},
		{"no-transform", "GET", "/json-nt?n=20000", ae, "", true},
		{"route off", "GET", "/off/text?n=20000", ae, "", false},
		{"route's own algorithms", "GET", "/gz/text?n=20000", ae, "gzip", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := g.do(t, request{method: c.method, path: c.path, headers: c.headers})
			if got := r.header.Get("Content-Encoding"); got != c.coding {
				t.Fatalf("Content-Encoding %q, want %q", got, c.coding)
			}
			if c.method == "GET" {
				n, _ := strconv.Atoi(c.path[strings.IndexByte(c.path, '=')+1:])
				if !bytes.Equal(decode(t, c.coding, []byte(r.body)), compressibleText(n)) {
					t.Fatal("body differs from the upstream's")
				}
			}
			if got := strings.Contains(r.header.Get("Vary"), "Accept-Encoding"); got != c.vary {
				t.Errorf("Vary %q: Accept-Encoding listed %v, want %v", r.header.Get("Vary"), got, c.vary)
			}
		})
	}
	// Already gzip from the upstream: relayed byte for byte, not wrapped again.
	r := g.do(t, request{path: "/pre?n=20000", headers: map[string]string{"Accept-Encoding": "zstd, gzip"}})
	if ce := r.header.Get("Content-Encoding"); ce != "gzip" {
		t.Fatalf("Content-Encoding %q, want the upstream's gzip", ce)
	}
	if !bytes.Equal(decode(t, "gzip", []byte(r.body)), compressibleText(20000)) {
		t.Fatal("pre-compressed body was changed")
	}
}

// A streamed answer (1 MiB, chunked upstream: larger than
// buffer_response_bytes) is compressed as it is relayed, in each coding.
func TestCompressionStreamed(t *testing.T) {
	g := compressionGateway(t, nil)
	want := compressibleText(1 << 20)
	for _, coding := range []string{"gzip", "br", "zstd"} {
		r := g.do(t, request{path: "/stream?n=1048576", headers: map[string]string{"Accept-Encoding": coding}})
		if ce := r.header.Get("Content-Encoding"); ce != coding {
			t.Fatalf("Content-Encoding %q, want %q", ce, coding)
		}
		if !bytes.Equal(decode(t, coding, []byte(r.body)), want) {
			t.Fatalf("%s: decoded stream differs", coding)
		}
		if len(r.body) > len(want)/3 {
			t.Errorf("%s: %d bytes for 1 MiB", coding, len(r.body))
		}
	}
}

// A slow stream (server-sent events) reaches the client event by event:
// the first event decodes before the upstream has sent the second, so
// compression does not hold it back waiting for a full block.
func TestCompressionStreamsEventsAsTheyCome(t *testing.T) {
	release := make(chan struct{})
	g := compressionGateway(t, release)
	req, _ := http.NewRequest("GET", g.url+"/events", nil)
	req.Header.Set("Accept-Encoding", "gzip")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ce := resp.Header.Get("Content-Encoding"); ce != "gzip" {
		close(release)
		t.Fatalf("Content-Encoding %q", ce)
	}
	zr, err := stdgzip.NewReader(resp.Body)
	if err != nil {
		close(release)
		t.Fatal(err)
	}
	br := bufio.NewReader(zr)
	line, err := br.ReadString('\n')
	if err != nil || line != "data: one\n" {
		close(release)
		t.Fatalf("first event: %q, %v", line, err)
	}
	close(release) // only now may the upstream go on
	rest, err := io.ReadAll(br)
	if err != nil || string(rest) != "\ndata: two\n\n" {
		t.Fatalf("rest: %q, %v", rest, err)
	}
}

// A HEAD gets the header fields its GET gets (RFC 9110 9.3.2):
// Content-Encoding, Vary, the weakened ETag, no Accept-Ranges, decided on
// the length the upstream's HEAD answer declares (or, without one, as for
// a stream). Its Content-Length, when encoded, is dropped: the upstream's
// is the identity length and the encoded one is unknown without the body
// (RFC 9110 8.6 lets a HEAD omit it). The Accept-Encoding values include
// tricks: identity refused on an empty or small body, a coding both
// offered and refused, malformed q-values, an unknown coding only.
func TestCompressionHeadMatchesGet(t *testing.T) {
	g := compressionGateway(t, nil)
	cases := []struct{ path, accept, coding string }{
		{"/text?n=20000&cl=1", "gzip, br", "br"},
		{"/text?n=20000", "gzip", "gzip"},                        // upstream HEAD without a length
		{"/text?n=1000&cl=1", "gzip, br, zstd", ""},              // below min_size
		{"/text?n=1000&cl=1", "br, identity;q=0", "br"},          // min_size waived
		{"/text?n=0&cl=1", "gzip, identity;q=0", ""},             // empty: nothing to encode
		{"/text?n=20000&cl=1", "gzip;q=0, br;q=0, zstd;q=0", ""}, // all refused
		{"/text?n=20000&cl=1", "gzip, gzip;q=0", "gzip"},         // the highest q of a name counts
		{"/text?n=20000&cl=1", "gzip;q=1.5, br;q=x, zstd;q=", ""},
		{"/text?n=20000&cl=1", "compress, x-unknown", ""},
		{"/text?n=20000&cl=1", "identity;q=0", ""}, // no coding acceptable: sent as it is
		{"/text?n=20000&cl=1", strings.Repeat("x, ", 2000) + "zstd", "zstd"},
		{"/png?n=20000", "gzip", ""},
		{"/json-nt?n=20000", "gzip", ""},
		{"/pre?n=20000", "zstd, gzip", "gzip"}, // the upstream's own coding, both times
		{"/off/text?n=20000&cl=1", "gzip", ""},
	}
	fields := []string{"Content-Encoding", "Vary", "ETag", "Accept-Ranges", "Content-Type"}
	for _, c := range cases {
		name := c.path + " " + c.accept
		if len(name) > 80 {
			name = name[:80]
		}
		t.Run(name, func(t *testing.T) {
			h := map[string]string{"Accept-Encoding": c.accept}
			get := g.do(t, request{path: c.path, headers: h})
			head := g.do(t, request{method: "HEAD", path: c.path, headers: h})
			if get.status != 200 || head.status != 200 {
				t.Fatalf("GET %d, HEAD %d", get.status, head.status)
			}
			if ce := get.header.Get("Content-Encoding"); ce != c.coding {
				t.Fatalf("GET Content-Encoding %q, want %q", ce, c.coding)
			}
			for _, f := range fields {
				if a, b := get.header.Values(f), head.header.Values(f); strings.Join(a, "|") != strings.Join(b, "|") {
					t.Errorf("%s: GET %q, HEAD %q", f, a, b)
				}
			}
			if head.body != "" {
				t.Errorf("HEAD answered a body of %d bytes", len(head.body))
			}
			// An encoded HEAD names no length (the identity one would lie);
			// an unencoded one keeps the upstream's, the GET's.
			hl := head.header.Get("Content-Length")
			switch {
			case c.coding != "" && c.path != "/pre?n=20000":
				if hl != "" {
					t.Errorf("encoded HEAD has Content-Length %s", hl)
				}
			case strings.Contains(c.path, "cl=1") && hl != strconv.Itoa(len(get.body)):
				t.Errorf("HEAD Content-Length %q, GET body %d bytes", hl, len(get.body))
			}
		})
	}
}

// The framing of an encoded HEAD answer without Content-Length (RFC 9112
// 6.3: a HEAD answer ends with its header section): a request pipelined
// after it on the same connection is answered, and read as its own.
func TestCompressionHeadFraming(t *testing.T) {
	g := compressionGateway(t, nil)
	addr := strings.TrimPrefix(g.url, "http://")
	out := testutil.RawExchange(t, addr,
		"HEAD /text?n=20000&cl=1 HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\n\r\n"+
			"GET /text?n=5&cl=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	first, second, ok := strings.Cut(out, "\r\n\r\n")
	if !ok || !strings.HasPrefix(first, "HTTP/1.1 200") || !strings.HasPrefix(second, "HTTP/1.1 200") {
		t.Fatalf("want two answers, got:\n%s", testutil.Indent(out))
	}
	lower := strings.ToLower(first)
	if !strings.Contains(lower, "\r\ncontent-encoding: gzip") || strings.Contains(lower, "content-length") {
		t.Errorf("HEAD answer head:\n%s", testutil.Indent(first))
	}
	if !strings.HasSuffix(second, "\r\n\r\nline ") {
		t.Errorf("second answer:\n%s", testutil.Indent(second))
	}
}
