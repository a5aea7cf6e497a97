package edge

import (
	"fmt"
	"testing"

	"github.com/sluicegw/sluice/lb"
)

// BenchmarkSplitSticky prices the sticky choice: hashing a 36-byte
// session id and drawing one rendezvous score per upstream (a log each).
func BenchmarkSplitSticky(b *testing.B) {
	key := []byte("3f2b9c1e-8d4a-4f6b-9a7e-2c5d8e1f0a3b")
	for _, n := range []int{2, 4, 8} {
		spec := make([]any, 0, 2*n)
		for i := range n {
			spec = append(spec, fmt.Sprintf("up-%d", i), 10+i)
		}
		sp := testSplit(spec...)
		b.Run(fmt.Sprintf("upstreams=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			sum := 0
			for b.Loop() {
				sum += sp.sticky(lb.HashBytes(key))
			}
			_ = sum
		})
	}
}
