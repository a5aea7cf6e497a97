package edge

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/sluicegw/sluice/edge/config"
	"github.com/valyala/bytebufferpool"
)

// FuzzContentCoding: any Content-Encoding value is either refused or names
// one coding sluice knows, and never panics.
func FuzzContentCoding(f *testing.F) {
	for _, s := range []string{"gzip", " X-GZIP ", "br", "zstd", "identity", "gzip, br", "gzip,", "", "deflate", "\tzstd\t"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		c, ok := parseContentCoding([]byte(v))
		if !ok {
			return
		}
		name := trimOWS([]byte(v))
		if bytes.ContainsRune(name, ',') || c >= numCodings ||
			(c == codingIdentity) != equalFoldASCII(name, "identity") {
			t.Fatalf("%q parsed as coding %d", v, c)
		}
	})
}

// FuzzDecodeRequestBody: a hostile body in each coding decodes to at most
// the limit, or fails with an error, never a panic; and a valid body
// (the seeds) decodes to what was coded.
func FuzzDecodeRequestBody(f *testing.F) {
	text := compressibleText(4 << 10)
	valid := map[string]bool{}
	for _, c := range []string{"gzip", "br", "zstd"} {
		good := encodeBody(f, c, text)
		valid[string(good)] = true
		f.Add(uint8(codingOf(c)-1), good)
		f.Add(uint8(codingOf(c)-1), good[:len(good)/2])
		f.Add(uint8(codingOf(c)-1), encodeBody(f, c, make([]byte, 64<<10)))
	}
	const limit = 8 << 10
	f.Fuzz(func(t *testing.T, which uint8, body []byte) {
		c := coding(1 + which%3)
		pool := decoderPool(c, config.DefaultDecompressionWindow)
		dec := pool.Get().(decoder)
		defer releaseDecoder(pool, dec)
		out := bytebufferpool.Get()
		defer bytebufferpool.Put(out)
		err := dec.start(bytes.NewReader(body), config.DefaultDecompressionWindow)
		if err == nil {
			err = readUpTo(dec, out, limit+1)
		}
		if len(out.B) > limit+1 {
			t.Fatalf("decoded %d bytes past a limit of %d", len(out.B), limit+1)
		}
		if valid[string(body)] && c == codingOf(codingName(body)) && (!errors.Is(err, io.EOF) || !bytes.Equal(out.B, text)) {
			t.Fatalf("a valid body decoded to %d bytes, %v", len(out.B), err)
		}
	})
}

// codingName guesses a seed's coding from its magic number.
func codingName(b []byte) string {
	switch {
	case bytes.HasPrefix(b, []byte{0x1f, 0x8b}):
		return "gzip"
	case bytes.HasPrefix(b, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		return "zstd"
	}
	return "br"
}

func codingOf(name string) coding {
	c, _ := parseContentCoding([]byte(name))
	return c
}
