package pathnorm

import (
	"strings"
	"testing"
)

func benchNormalize(b *testing.B, path string, o Options) {
	in := []byte(path)
	buf := make([]byte, 0, 3*len(in))
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := Normalize(buf[:0], in, o); err != nil {
			b.Fatal(err)
		}
	}
}

// The common case: nothing to change, the fast path.
func BenchmarkNormalizeClean(b *testing.B) { benchNormalize(b, "/api/users/42", Options{}) }

// Decoding, upper-casing, a dot segment and a double slash: the slow path.
func BenchmarkNormalizeDecode(b *testing.B) {
	benchNormalize(b, "/api/%7eusers/./%41b%3a/../42//caf%c3%a9", Options{})
}

// A kept %2F: the slow path in keep mode.
func BenchmarkNormalizeKeepEscapedSlash(b *testing.B) {
	benchNormalize(b, "/files/team%2fdocs/report.pdf", Options{EscapedSlashes: Keep})
}

// A long clean path (about 1 KiB) and the same with one "%" in the middle.
func BenchmarkNormalizeLong(b *testing.B) {
	benchNormalize(b, strings.Repeat("/segment-0123456789", 54), Options{})
}

func BenchmarkNormalizeLongSlow(b *testing.B) {
	p := strings.Repeat("/segment-0123456789", 27)
	benchNormalize(b, p+"/%41"+p, Options{})
}
