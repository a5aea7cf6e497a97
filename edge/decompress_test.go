package edge

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	brrr "github.com/molecule-man/go-brrr"
	"github.com/sluicegw/sluice/bench/stub"
	"github.com/sluicegw/sluice/internal/testutil"
)

// encodeBody codes b with an encoder independent of the gateway's
// decoders' settings, with a 1 MiB window (max_window's default).
func encodeBody(t testing.TB, coding string, b []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	var w io.WriteCloser
	switch coding {
	case "gzip":
		w = gzip.NewWriter(&out)
	case "br":
		bw, err := brrr.NewWriterOptions(&out, 5, brrr.WriterOptions{LGWin: 20})
		if err != nil {
			t.Fatal(err)
		}
		w = bw
	case "zstd":
		z, err := zstd.NewWriter(&out, zstd.WithWindowSize(1<<20))
		if err != nil {
			t.Fatal(err)
		}
		w = z
	default:
		t.Fatalf("no encoder for %q", coding)
	}
	if _, err := w.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

func sha(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

// streamed hides a body's length, so the client sends it chunked.
type streamed struct{ io.Reader }

// decompressGateway: /api/ decodes (max_body_bytes 8 MiB, the server's
// buffer_body_bytes 1 MiB), /zstd/ decodes zstd only, /small/ has a 256 KiB
// limit (below the buffer size), /bomb/ 2 MiB, /plain/ decodes nothing.
func decompressGateway(t *testing.T) *testGateway {
	up := testutil.StartUpstream(t, stub.Options{Name: "echo"})
	return startGateway(t, `
listen: 127.0.0.1:0
admin: { listen: "off" }
upstreams:
  up: { targets: [ { url: "`+up.URL+`" } ] }
request_decompression: {}
routes:
  - { name: api, match: { prefix: /api/ }, upstream: up, rewrite: { replace_path: /__stub/echo }, max_body_bytes: 8MiB }
  - { name: zstd, match: { prefix: /zstd/ }, upstream: up, rewrite: { replace_path: /__stub/echo }, request_decompression: { algorithms: [zstd] } }
  - { name: small, match: { prefix: /small/ }, upstream: up, rewrite: { replace_path: /__stub/echo }, max_body_bytes: 256KiB }
  - { name: bomb, match: { prefix: /bomb/ }, upstream: up, rewrite: { replace_path: /__stub/echo }, max_body_bytes: 2MiB }
  - { name: plain, match: { prefix: /plain/ }, upstream: up, rewrite: { replace_path: /__stub/echo }, request_decompression: { enabled: false } }
`)
}

// Each coding is decoded: the upstream gets the decoded body, no
// Content-Encoding, and a Content-Length that matches (small bodies) or a
// chunked body (decoded bodies larger than buffer_body_bytes), whether the
// client sent the compressed body with a length or chunked.
func TestDecompressRequestCodings(t *testing.T) {
	g := decompressGateway(t)
	small, large := compressibleText(200<<10), compressibleText(3<<20)
	for _, c := range []struct {
		name, ce, coding string
		body             []byte
		chunked          bool
	}{
		{"gzip", "gzip", "gzip", small, false},
		{"x-gzip, upper case", " X-GZIP ", "gzip", small, false},
		{"br", "br", "br", small, false},
		{"zstd", "zstd", "zstd", small, false},
		{"gzip chunked upload", "gzip", "gzip", small, true},
		{"br chunked upload", "br", "br", small, true},
		{"gzip 3 MiB decoded", "gzip", "gzip", large, false},
		{"br 3 MiB decoded, chunked upload", "br", "br", large, true},
		{"zstd 3 MiB decoded, chunked upload", "zstd", "zstd", large, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			var body io.Reader = bytes.NewReader(encodeBody(t, c.coding, c.body))
			if c.chunked {
				body = streamed{body}
			}
			e, _ := g.echo(t, request{method: "POST", path: "/api/x", body: body,
				headers: map[string]string{"Content-Encoding": c.ce, "Content-Type": "text/plain"}})
			if e.BodyBytes != int64(len(c.body)) || e.BodySHA256 != sha(c.body) {
				t.Fatalf("upstream got %d bytes (sha %s), want the %d decoded bytes", e.BodyBytes, e.BodySHA256, len(c.body))
			}
			if ce := e.Headers["Content-Encoding"]; len(ce) != 0 {
				t.Errorf("upstream got Content-Encoding %q", ce)
			}
			if ct := e.Headers["Content-Type"]; len(ct) != 1 || ct[0] != "text/plain" {
				t.Errorf("upstream got Content-Type %q", ct)
			}
			cl, te := e.Headers["Content-Length"], e.Headers["Transfer-Encoding"]
			if len(c.body) <= 1<<20 {
				if len(cl) != 1 || cl[0] != strconv.Itoa(len(c.body)) || len(te) != 0 {
					t.Errorf("upstream got Content-Length %q, Transfer-Encoding %q; want %d", cl, te, len(c.body))
				}
			} else if len(cl) != 0 || len(te) != 1 || te[0] != "chunked" {
				t.Errorf("upstream got Content-Length %q, Transfer-Encoding %q; want chunked", cl, te)
			}
		})
	}
}

// zeroBomb is n MiB of zeros coded as n copies of one coded MiB: gzip
// members and zstd frames may follow one another (RFC 1952 2.2, RFC 8878
// 3), so a 1 GiB bomb costs about 1 MiB to send and nothing to build.
func zeroBomb(t testing.TB, coding string, n int) []byte {
	one := encodeBody(t, coding, make([]byte, 1<<20))
	return bytes.Repeat(one, n)
}

// A decompression bomb is refused with 413 once its decoded size passes
// the route's limit, and decoding it never holds it whole: 1 GiB of zeros
// costs the process far less than 1 GiB of allocations.
func TestDecompressRequestBombRefused(t *testing.T) {
	g := decompressGateway(t)
	for _, c := range []struct {
		name, path, coding string
		mib                int
		chunked            bool
	}{
		{"gzip 1 GiB, limit 2 MiB (streamed part way)", "/bomb/", "gzip", 1024, false},
		{"zstd 1 GiB chunked, limit 2 MiB", "/bomb/", "zstd", 1024, true},
		{"gzip 64 MiB, limit 256 KiB (refused before the upstream)", "/small/", "gzip", 64, false},
		{"zstd 64 MiB chunked, limit 256 KiB", "/small/", "zstd", 64, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			bomb := zeroBomb(t, c.coding, c.mib)
			var body io.Reader = bytes.NewReader(bomb)
			if c.chunked {
				body = streamed{body}
			}
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			r := g.do(t, request{method: "POST", path: c.path + "x", body: body,
				headers: map[string]string{"Content-Encoding": c.coding}})
			runtime.ReadMemStats(&after)
			wantFault(t, r, http.StatusRequestEntityTooLarge, "request body too large")
			alloc := after.TotalAlloc - before.TotalAlloc
			if alloc > 128<<20 {
				t.Errorf("refusing a %d MiB bomb allocated %d MiB", c.mib, alloc>>20)
			}
			t.Logf("%d MiB bomb refused after %.1f MiB of allocations (client, gateway and upstream)", c.mib, float64(alloc)/(1<<20))
		})
	}
	// The brotli bomb: one stream (brotli has no members to repeat).
	bomb := encodeBody(t, "br", make([]byte, 64<<20))
	r := g.do(t, request{method: "POST", path: "/small/x", body: bytes.NewReader(bomb),
		headers: map[string]string{"Content-Encoding": "br"}})
	wantFault(t, r, http.StatusRequestEntityTooLarge, "request body too large")
}

// A body that does not decode gets 400 (garbage, a truncated stream, data
// after the end of the stream), for bodies read whole and streamed.
func TestDecompressRequestCorrupt(t *testing.T) {
	g := decompressGateway(t)
	text := compressibleText(64 << 10)
	for _, coding := range []string{"gzip", "br", "zstd"} {
		good := encodeBody(t, coding, text)
		bad := map[string][]byte{
			"garbage":   []byte("this is not " + coding + " at all, not even close............"),
			"truncated": good[:len(good)/2],
			"trailing":  append(append([]byte{}, good...), "junk"...),
		}
		for name, b := range bad {
			for _, chunked := range []bool{false, true} {
				var body io.Reader = bytes.NewReader(b)
				if chunked {
					body = streamed{body}
				}
				r := g.do(t, request{method: "POST", path: "/api/x", body: body,
					headers: map[string]string{"Content-Encoding": coding}})
				if r.status != http.StatusBadRequest {
					t.Errorf("%s %s (chunked %v): status %d, want 400 (%s)", coding, name, chunked, r.status, r.body)
					continue
				}
				wantFault(t, r, http.StatusBadRequest, "request body does not decode")
			}
		}
	}
	// Garbage after more than buffer_body_bytes decoded: the body is
	// already streaming upstream, and the client still gets 400.
	big := encodeBody(t, "gzip", compressibleText(3<<20))
	big = append(big[:len(big)-8], "junkjunkjunk"...)
	r := g.do(t, request{method: "POST", path: "/api/x", body: bytes.NewReader(big),
		headers: map[string]string{"Content-Encoding": "gzip"}})
	wantFault(t, r, http.StatusBadRequest, "could not read request body")
}

// A list of codings, or one the route does not decode, gets 415 with
// Accept-Encoding naming what it does (RFC 9110 15.5.16, 12.5.3).
func TestDecompressRequestUnsupported(t *testing.T) {
	g := decompressGateway(t)
	gz := encodeBody(t, "gzip", []byte("hello"))
	for _, c := range []struct{ path, ce, accept string }{
		{"/api/x", "gzip, br", "gzip, br, zstd"},
		{"/api/x", "gzip,", "gzip, br, zstd"},
		{"/api/x", "deflate", "gzip, br, zstd"},
		{"/api/x", "compress", "gzip, br, zstd"},
		{"/zstd/x", "gzip", "zstd"},
	} {
		for _, body := range []io.Reader{bytes.NewReader(gz), streamed{bytes.NewReader(gz)}} {
			r := g.do(t, request{method: "POST", path: c.path, body: body,
				headers: map[string]string{"Content-Encoding": c.ce}})
			wantFault(t, r, http.StatusUnsupportedMediaType, "unsupported content encoding")
			if got := r.header.Get("Accept-Encoding"); got != c.accept {
				t.Errorf("%s %q: Accept-Encoding %q, want %q", c.path, c.ce, got, c.accept)
			}
		}
	}
}

// Off (the route's enabled: false, or no block): the body and its
// Content-Encoding pass untouched, as they always did. identity is no
// coding and passes too.
func TestDecompressRequestOffUntouched(t *testing.T) {
	g := decompressGateway(t)
	gz := encodeBody(t, "gzip", compressibleText(10<<10))
	e, _ := g.echo(t, request{method: "POST", path: "/plain/x", body: bytes.NewReader(gz),
		headers: map[string]string{"Content-Encoding": "gzip"}})
	if e.BodySHA256 != sha(gz) || strings.Join(e.Headers["Content-Encoding"], ",") != "gzip" {
		t.Errorf("route off: upstream got %d bytes, Content-Encoding %q; want the client's", e.BodyBytes, e.Headers["Content-Encoding"])
	}
	e, _ = g.echo(t, request{method: "POST", path: "/api/x", body: strings.NewReader("plain"),
		headers: map[string]string{"Content-Encoding": "identity"}})
	if e.BodySHA256 != sha([]byte("plain")) {
		t.Errorf("identity: upstream got %d bytes", e.BodyBytes)
	}
	e, _ = g.echo(t, request{method: "POST", path: "/api/x", body: strings.NewReader("plain")})
	if e.BodySHA256 != sha([]byte("plain")) || len(e.Headers["Content-Encoding"]) != 0 {
		t.Errorf("no coding: upstream got %d bytes", e.BodyBytes)
	}
}

// Two Content-Encoding lines are a list (RFC 9110 5.3): 415, even when
// each names a coding the route decodes. Every line counts: an empty
// first line must not hide a gzip one behind it (the body would go
// upstream coded, with its Content-Encoding), and one empty line names no
// coding.
func TestDecompressRequestTwoHeaderLines(t *testing.T) {
	g := decompressGateway(t)
	gz := encodeBody(t, "gzip", []byte("hello"))
	for _, lines := range []string{
		"Content-Encoding: gzip\r\nContent-Encoding: gzip\r\n",
		"Content-Encoding:\r\nContent-Encoding: gzip\r\n",
		"Content-Encoding: \r\ncontent-encoding: gzip\r\n",
		"Content-Encoding: gzip\r\nContent-Encoding:\r\n",
		"Content-Encoding:\r\n",
	} {
		conn, err := net.DialTimeout("tcp", g.addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
		fmt.Fprintf(conn, "POST /api/x HTTP/1.1\r\nHost: t\r\n%sContent-Length: %d\r\n\r\n%s", lines, len(gz), gz)
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		conn.Close()
		if resp.StatusCode != http.StatusUnsupportedMediaType {
			t.Errorf("%q: status %d, want 415 (%s)", lines, resp.StatusCode, b)
			continue
		}
		wantFault(t, response{resp.StatusCode, resp.Header, string(b)}, http.StatusUnsupportedMediaType, "unsupported content encoding")
	}
}

// sourceReader is a request's compressed input as a decoder sees it,
// counting the reads that reach it.
type sourceReader struct {
	r     bytes.Reader
	reads int
}

func (s *sourceReader) Read(p []byte) (int, error) { s.reads++; return s.r.Read(p) }

// A decoder returned to the pool keeps no hold on the request it decoded:
// read again, it yields nothing and never reads the old source, and that
// source can be collected while the pooled decoder lives. Otherwise a
// pooled decoder would pin a released request's limiter and buffers, and
// a stray read could pass one request's body into another's.
func TestDecompressDecoderClearedOnRelease(t *testing.T) {
	for _, c := range []struct {
		name string
		c    coding
	}{{"gzip", codingGzip}, {"br", codingBr}, {"zstd", codingZstd}} {
		t.Run(c.name, func(t *testing.T) {
			coded := encodeBody(t, c.name, compressibleText(512<<10))
			dec := decoderPool(c.c, 1<<20).Get().(decoder)
			collected := make(chan struct{})
			func() {
				src := new(sourceReader)
				src.r.Reset(coded)
				runtime.AddCleanup(src, func(ch chan struct{}) { close(ch) }, collected)
				if err := dec.start(src, 1<<20); err != nil {
					t.Fatal(err)
				}
				if _, err := io.ReadFull(dec, make([]byte, 4<<10)); err != nil {
					t.Fatal(err)
				}
				dec.clear() // what releaseDecoder does before pooling
				before := src.reads
				n, _ := dec.Read(make([]byte, 4<<10))
				if n != 0 || src.reads != before {
					t.Fatalf("a cleared decoder read %d more times from the released source and returned %d bytes", src.reads-before, n)
				}
			}()
			for i := 0; ; i++ {
				runtime.GC()
				select {
				case <-collected:
					runtime.KeepAlive(dec)
					return
				default:
				}
				if i == 100 {
					t.Fatal("the released source is still referenced from the cleared decoder after 100 collections")
				}
				runtime.Gosched()
			}
		})
	}
}
