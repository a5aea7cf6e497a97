//go:build !race

package edge

import (
	"fmt"
	"testing"
)

// decompressHarness is a handler harness on a route that decodes request
// bodies, sending a POST whose body is coded with coding ("" for none).
func decompressHarness(tb testing.TB, coding string, body []byte) *handlerHarness {
	return postHarness(tb, "request_decompression: {}", coding, body)
}

func postHarness(tb testing.TB, config, coding string, body []byte) *handlerHarness {
	h := newHandlerHarnessWith(tb, 64, "/api/x", config, "")
	head := "POST /api/x HTTP/1.1\r\nHost: bench.local\r\nUser-Agent: bench\r\nX-Forwarded-For: 10.0.0.1\r\n"
	if coding != "" {
		body = encodeBody(tb, coding, body)
		head += "Content-Encoding: " + coding + "\r\n"
	}
	h.raw = append([]byte(fmt.Sprintf("%sContent-Length: %d\r\n\r\n", head, len(body))), body...)
	return h
}

// A route that decodes request bodies allocates nothing for a request
// without Content-Encoding, nor, once its decoder pools are warm, for a
// gzip, br or zstd one. Counted against the same uncoded POST on a route
// that decodes nothing: the in-process stub upstream allocates once to
// discard a request body it does not read, and AllocsPerRun counts it.
func TestDecompressAllocatesNothing(t *testing.T) {
	text := compressibleText(16 << 10)
	allocs := func(h *handlerHarness) float64 {
		for i := 0; i < 10; i++ {
			h.once(t, 200)
		}
		return testing.AllocsPerRun(300, func() { h.once(t, 200) })
	}
	base := allocs(postHarness(t, "", "", text))
	for _, coding := range []string{"", "gzip", "br", "zstd"} {
		h := decompressHarness(t, coding, text)
		n := allocs(h)
		if ce := h.ctx.Request.Header.ContentEncoding(); len(ce) != 0 {
			t.Fatalf("%q: the request still says Content-Encoding %q", coding, ce)
		}
		if n != base {
			t.Errorf("%q: %.1f allocations per request more than the same POST without decompression (%.1f vs %.1f)", coding, n-base, n, base)
		}
	}
}

// BenchmarkDecompressRequest: one proxied POST of a 16 KiB text body,
// coded as each coding, through the gateway handler.
//
//	go test ./edge -run '^$' -bench DecompressRequest -benchmem
func BenchmarkDecompressRequest(b *testing.B) {
	for _, coding := range []string{"", "gzip", "br", "zstd"} {
		b.Run("coding="+coding, func(b *testing.B) {
			decompressHarness(b, coding, compressibleText(16<<10)).bench(b)
		})
	}
}
