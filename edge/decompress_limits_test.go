package edge

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	brrr "github.com/molecule-man/go-brrr"
	"github.com/sluicegw/sluice/bench/stub"
	"github.com/sluicegw/sluice/internal/testutil"
)

// encodeWindow codes b as coding with the given window: brotli's lgwin
// (RFC 7932 9.1), zstd's window size (RFC 8878 3.1.1.1.2).
func encodeWindow(t testing.TB, coding string, b []byte, lgwin int) []byte {
	t.Helper()
	var out bytes.Buffer
	var w io.WriteCloser
	switch coding {
	case "br":
		bw, err := brrr.NewWriterOptions(&out, 5, brrr.WriterOptions{LGWin: lgwin})
		if err != nil {
			t.Fatal(err)
		}
		w = bw
	case "zstd":
		z, err := zstd.NewWriter(&out, zstd.WithWindowSize(1<<lgwin))
		if err != nil {
			t.Fatal(err)
		}
		w = z
	}
	if _, err := w.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// stalledUpload sends the head of a chunked upload and one chunk of
// coded bytes, then nothing more: a client that stalls.
func stalledUpload(t *testing.T, addr, path, coding string, chunk []byte) net.Conn {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
	fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: t\r\nContent-Encoding: %s\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n", path, coding, len(chunk), chunk)
	return conn
}

func readResponse(t *testing.T, conn net.Conn) response {
	t.Helper()
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer to a stalled upload: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{resp.StatusCode, resp.Header, string(b)}
}

// A body declaring a window above max_window (default 1 MiB) is refused
// with 413 from its first bytes, before a decoder sizes a window to it:
// a few coded bytes, with the client then stalling, used to hold a 16 MiB
// brotli or 8 MiB zstd window each until the read timeout. The answer
// comes without the rest of the body, and eight such uploads cost the
// process far less than one window. A route's max_window raises the
// bound; a later zstd frame is checked too.
func TestDecompressRequestWindowRefused(t *testing.T) {
	up := testutil.StartUpstream(t, stub.Options{Name: "echo"})
	g := startGateway(t, `
listen: 127.0.0.1:0
admin: { listen: "off" }
upstreams:
  up: { targets: [ { url: "`+up.URL+`" } ] }
request_decompression: {}
routes:
  - { name: wide, match: { prefix: /wide/ }, upstream: up, rewrite: { replace_path: /__stub/echo }, max_body_bytes: 32MiB, request_decompression: { max_window: 16MiB } }
  - { name: api, match: { prefix: /api/ }, upstream: up, rewrite: { replace_path: /__stub/echo }, max_body_bytes: 32MiB, request_decompression: { max_window: 1MiB } }
  - { name: dflt, match: { prefix: /dflt/ }, upstream: up, rewrite: { replace_path: /__stub/echo }, max_body_bytes: 32MiB }
`)
	plain := compressibleText(2 << 20)
	br24, zstd23 := encodeWindow(t, "br", plain, 24), encodeWindow(t, "zstd", plain, 23)
	for _, c := range []struct {
		coding string
		chunk  []byte
	}{{"br", br24[:13]}, {"zstd", zstd23[:64]}} {
		t.Run(c.coding, func(t *testing.T) {
			const n = 8
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			for range n {
				conn := stalledUpload(t, g.addr, "/api/x", c.coding, c.chunk)
				wantFault(t, readResponse(t, conn), http.StatusRequestEntityTooLarge, "request body compression window too large")
				conn.Close()
			}
			runtime.ReadMemStats(&after)
			if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 32<<20 { // one refused window would be 8 or 16 MiB each: 64 or 128 MiB for eight
				t.Errorf("refusing %d uploads of %d coded bytes allocated %.1f MiB", n, len(c.chunk), float64(alloc)/(1<<20))
			}
		})
	}
	// max_window: 16MiB takes the same bodies whole.
	for coding, body := range map[string][]byte{"br": br24, "zstd": zstd23} {
		e, _ := g.echo(t, request{method: "POST", path: "/wide/x", body: bytes.NewReader(body),
			headers: map[string]string{"Content-Encoding": coding}})
		if e.BodySHA256 != sha(plain) {
			t.Errorf("%s with a wide window on a max_window: 16MiB route: upstream got %d bytes", coding, e.BodyBytes)
		}
	}
	// The default window is the 8 MB RFC 9659 has every HTTP zstd decoder
	// take: a zstd body declaring it is decoded; brotli's 16 MiB is not.
	if e, _ := g.echo(t, request{method: "POST", path: "/dflt/x", body: bytes.NewReader(zstd23),
		headers: map[string]string{"Content-Encoding": "zstd"}}); e.BodySHA256 != sha(plain) {
		t.Errorf("zstd with an 8 MiB window on a default route: upstream got %d bytes", e.BodyBytes)
	}
	wantFault(t, g.do(t, request{method: "POST", path: "/dflt/x", body: bytes.NewReader(br24),
		headers: map[string]string{"Content-Encoding": "br"}}), http.StatusRequestEntityTooLarge, "request body compression window too large")
	// A second zstd frame with a larger window than the first.
	two := append(encodeWindow(t, "zstd", []byte("small first frame"), 20), zstd23...)
	r := g.do(t, request{method: "POST", path: "/api/x", body: bytes.NewReader(two),
		headers: map[string]string{"Content-Encoding": "zstd"}})
	wantFault(t, r, http.StatusRequestEntityTooLarge, "request body compression window too large")
}

// brotliWindow reads WBITS as RFC 7932 9.1 codes it, least significant
// bit first.
func TestDecompressBrotliWindowBits(t *testing.T) {
	for _, c := range []struct {
		b    byte
		want int
	}{
		{0b0000_0000, 1<<16 - 16},                               // 0: 16
		{0b0000_0011, 1<<18 - 16},                               // 1, 001: 18
		{0b0000_1111, 1<<24 - 16},                               // 1, 111: 24
		{0b0000_0001, 1<<17 - 16},                               // 1, 000, 000: 17
		{0b0010_0001, 1<<10 - 16},                               // 1, 000, 010: 10
		{0b0111_0001, 1<<15 - 16},                               // 1, 000, 111: 15
		{0b0001_0001, 1 << 30},                                  // 1, 000, 001: reserved (large window)
		{0b1000_1110, 1<<16 - 16},                               // 0 and anything: 16
		{encodeWindow(t, "br", []byte("x"), 22)[0], 1<<22 - 16}, // an encoder's
	} {
		if got := brotliWindow(c.b); got != c.want {
			t.Errorf("brotliWindow(%08b) = %d, want %d", c.b, got, c.want)
		}
	}
}

// Decodes in flight are bounded per gateway (max_concurrent): past it a
// request gets 503 with Retry-After, so stalled uploads hold at most
// max_concurrent windows; a slot frees when its upload ends.
func TestDecompressRequestConcurrencyBound(t *testing.T) {
	up := testutil.StartUpstream(t, stub.Options{Name: "echo"})
	g := startGateway(t, `
listen: 127.0.0.1:0
admin: { listen: "off" }
upstreams:
  up: { targets: [ { url: "`+up.URL+`" } ] }
request_decompression: { max_concurrent: 2 }
routes:
  - { name: api, match: { prefix: /api/ }, upstream: up, rewrite: { replace_path: /__stub/echo } }
  - { name: zstd, match: { prefix: /zstd/ }, upstream: up, rewrite: { replace_path: /__stub/echo }, request_decompression: { algorithms: [zstd] } }
`)
	gz := encodeBody(t, "gzip", compressibleText(64<<10))
	conns := []net.Conn{
		stalledUpload(t, g.addr, "/api/x", "gzip", gz[:len(gz)/2]),
		stalledUpload(t, g.addr, "/zstd/x", "zstd", encodeBody(t, "zstd", compressibleText(64<<10))[:100]),
	}
	post := func() response {
		return g.do(t, request{method: "POST", path: "/api/x", body: bytes.NewReader(gz),
			headers: map[string]string{"Content-Encoding": "gzip"}})
	}
	// The two stalled uploads reach the step in their own time: wait for
	// the third decode to be refused.
	var r response
	for i := 0; ; i++ {
		if r = post(); r.status == http.StatusServiceUnavailable {
			break
		}
		if r.status != http.StatusOK || i == 2000 {
			t.Fatalf("a third decode with two uploads stalled: status %d (%s), want 503", r.status, r.body)
		}
		runtime.Gosched()
	}
	wantFault(t, r, http.StatusServiceUnavailable, "too many request bodies being decoded")
	if ra := r.header.Get("Retry-After"); ra != "1" {
		t.Errorf("Retry-After %q, want 1", ra)
	}
	// A request without a coding is not counted.
	if r := g.do(t, request{method: "POST", path: "/api/x", body: bytes.NewReader([]byte("plain"))}); r.status != http.StatusOK {
		t.Errorf("an uncoded body while decoders are busy: status %d", r.status)
	}
	// The stalled uploads end: their slots free.
	for _, c := range conns {
		c.Close()
	}
	for i := 0; ; i++ {
		if r = post(); r.status == http.StatusOK {
			break
		}
		if i == 2000 {
			t.Fatalf("after the stalled uploads ended: status %d (%s), want 200", r.status, r.body)
		}
		runtime.Gosched()
	}
}
