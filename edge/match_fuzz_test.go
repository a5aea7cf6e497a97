package edge

import (
	"testing"

	"github.com/valyala/fasthttp"
)

// unquotedEqual decodes a query parameter's name on the fly: it must agree
// with fasthttp's decoder (the one the value goes through) on any input.
func FuzzUnquotedEqual(f *testing.F) {
	for _, s := range []string{"beta", "b%65ta", "a+b", "%", "%4", "%zz", "%%41", "%41%"} {
		f.Add(s, "beta")
	}
	f.Fuzz(func(t *testing.T, raw, want string) {
		dec := string(fasthttp.AppendUnquotedArg(nil, []byte(raw)))
		if got := unquotedEqual([]byte(raw), []byte(want)); got != (dec == want) {
			t.Fatalf("unquotedEqual(%q, %q) = %v; fasthttp decodes it as %q", raw, want, got, dec)
		}
		if !unquotedEqual([]byte(raw), []byte(dec)) {
			t.Fatalf("%q does not equal its own decoding %q", raw, dec)
		}
	})
}
